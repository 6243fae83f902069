"""ONNX export of the window VAE: window [B, W] -> score [B] and reconstruction [B], both computed in the
graph from the latent mean; the reconstruction is the decoder's value for the window's last point, in
the scaled units of the input (the worker scales it back to the series' units).

The input is the scaled, clipped float32 window exactly as `schemas.detect.window_features` gives
it; the worker adds nothing but the batch axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.core.export import check_parity, export_graph
from training.kpi.fit import torch_window_scores
from training.kpi.model import WindowVAE
from training.kpi.scoring import SCORE_BATCH

INPUT = "window"
OUTPUT = "score"
RECONSTRUCTION = "reconstruction"


class WindowScoreGraph(nn.Module):
    def __init__(self, vae: WindowVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, _ = self.vae.encode(window)
        return self.vae.score(window), self.vae.decode(mu)[:, -1]


def export_window_graph(vae: WindowVAE, path: Path) -> None:
    vae = vae.cpu().eval()
    export_graph(WindowScoreGraph(vae), torch.randn(2, vae.window), path, [INPUT], [OUTPUT, RECONSTRUCTION])


def check_window_parity(vae: WindowVAE, onnx_path: Path, windows: np.ndarray) -> float:
    """The core's parity check on real scaled windows."""
    return check_parity(lambda w: torch_window_scores(vae, w), onnx_path, windows, SCORE_BATCH)
