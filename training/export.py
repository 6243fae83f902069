"""ONNX export: the score is computed inside the graph, from the latent mean.

Three graphs go into a bundle, each with a dynamic batch axis and named tensors:
  model.onnx    images (B, H, W) -> score (B), reconstruction (B, H, W)
  encoder.onnx  images (B, H, W) -> mu (B, Z), logvar (B, Z)
  decoder.onnx  z (B, Z)         -> reconstruction (B, H, W)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.loss import anomaly_score
from training.models import VAE

OPSET = 18
SCORE_INPUT = "images"
SCORE_OUTPUTS = ("score", "reconstruction")


class ScoreGraph(nn.Module):
    """images -> (score, reconstruction); deterministic: the decoder sees the latent mean."""

    def __init__(self, vae: VAE, score_function: str) -> None:
        super().__init__()
        self.vae = vae
        self.score_function = score_function

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, _ = self.vae.encode(images)
        logits = self.vae.decode(mu)
        return anomaly_score(logits, images, self.score_function), torch.sigmoid(logits)


class EncoderGraph(nn.Module):
    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vae.encode(images)


class DecoderGraph(nn.Module):
    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.vae.decode(z))


def export_graph(
    module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]
) -> None:
    """Export `module` (one input, dynamic batch axis 0) at the pinned opset; shared by images and KPIs."""
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=OPSET, input_names=inputs,
            output_names=outputs, dynamic_shapes=({0: batch},), external_data=False,
            optimize=True, verbose=False,
        )  # fmt: skip
    program.save(str(path), external_data=False)


def export_bundle_graphs(vae: VAE, score_function: str, folder: Path) -> dict[str, str]:
    """Write the three graphs into `folder`; returns {file name: role}."""
    vae = vae.cpu().eval()
    h, w = vae.image_shape
    images = torch.rand(2, h, w)
    export_graph(
        ScoreGraph(vae, score_function), images, folder / "model.onnx", [SCORE_INPUT], list(SCORE_OUTPUTS)
    )
    export_graph(EncoderGraph(vae), images, folder / "encoder.onnx", [SCORE_INPUT], ["mu", "logvar"])
    export_graph(
        DecoderGraph(vae), torch.randn(2, vae.latent_dim), folder / "decoder.onnx", ["z"], ["reconstruction"]
    )
    return {"model.onnx": "score", "encoder.onnx": "encoder", "decoder.onnx": "decoder"}


@torch.no_grad()
def torch_scores(vae: VAE, score_function: str, images: np.ndarray) -> np.ndarray:
    """The reference the ONNX graph must match: ScoreGraph in torch, float32 images in [0, 1]."""
    score, _ = ScoreGraph(vae.cpu().eval(), score_function)(torch.from_numpy(images.astype(np.float32)))
    return score.numpy()


class _quiet_exporter:
    """The dynamo exporter logs its progress at INFO and prints emoji; keep the CLI output clean."""

    def __enter__(self) -> None:
        self._levels = {}
        for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
