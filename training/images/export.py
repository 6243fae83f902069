"""ONNX export of the image VAE: the score is computed inside the graph, from the latent mean.

Three graphs go into a bundle, each with a dynamic batch axis and named tensors:
  model.onnx    images (B, H, W) -> score (B), reconstruction (B, H, W), anomaly_map (B, h, w)
  encoder.onnx  images (B, H, W) -> mu (B, Z), logvar (B, Z)
  decoder.onnx  z (B, Z)         -> reconstruction (B, H, W)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from schemas import MODEL_FILE
from schemas.outputs import pool_size
from training.core.export import check_parity, export_graph
from training.images.loss import anomaly_score
from training.images.mnist import scale_pixels
from training.images.models import VAE

SCORE_INPUT = "images"
SCORE_OUTPUTS = ("score", "reconstruction", "anomaly_map")


class ScoreGraph(nn.Module):
    """images -> (score, reconstruction, anomaly_map); deterministic: the decoder sees the latent mean.

    The anomaly map is the signed residual, image minus reconstruction, averaged over square cells
    of pool_size(image) pixels a side: the worker publishes it on alerts (worker/explain.py), so it
    is computed in the batch that computes the score, on the device that runs it."""

    def __init__(self, vae: VAE, score_function: str) -> None:
        super().__init__()
        self.vae = vae
        self.score_function = score_function
        self.pool = pool_size(vae.image_shape)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, _ = self.vae.encode(images)
        logits = self.vae.decode(mu)
        reconstruction = torch.sigmoid(logits)
        residual = images - reconstruction
        if self.pool > 1:
            residual = F.avg_pool2d(residual.unsqueeze(1), self.pool, ceil_mode=True).squeeze(1)
        return anomaly_score(logits, images, self.score_function), reconstruction, residual


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


def export_bundle_graphs(vae: VAE, score_function: str, folder: Path) -> dict[str, str]:
    """Write the three graphs into `folder`; returns {file name: role}."""
    vae = vae.cpu().eval()
    h, w = vae.image_shape
    images = torch.rand(2, h, w)
    export_graph(
        ScoreGraph(vae, score_function), images, folder / MODEL_FILE, [SCORE_INPUT], list(SCORE_OUTPUTS)
    )
    export_graph(EncoderGraph(vae), images, folder / "encoder.onnx", [SCORE_INPUT], ["mu", "logvar"])
    export_graph(
        DecoderGraph(vae), torch.randn(2, vae.latent_dim), folder / "decoder.onnx", ["z"], ["reconstruction"]
    )
    return {MODEL_FILE: "score", "encoder.onnx": "encoder", "decoder.onnx": "decoder"}


@torch.no_grad()
def torch_scores(vae: VAE, score_function: str, images: np.ndarray) -> np.ndarray:
    """The reference the ONNX graph must match: ScoreGraph in torch, float32 images in [0, 1]."""
    score, *_ = ScoreGraph(vae.cpu().eval(), score_function)(torch.from_numpy(images.astype(np.float32)))
    return score.numpy()


def check_image_parity(vae: VAE, score_function: str, onnx_path: Path, images_u8: np.ndarray) -> float:
    """The core's parity check on real uint8 images, pre-processed as the worker does."""
    images = scale_pixels(images_u8)
    return check_parity(lambda x: torch_scores(vae, score_function, x), onnx_path, images)
