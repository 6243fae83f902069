"""ONNX export of the window VAE: window [B, W] -> score [B], computed in the graph from the latent mean.

The input is the normalised, clipped float32 window exactly as `schemas.timeseries.normalise`
gives it; the worker adds nothing but the batch axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.export import export_graph
from training.kpi.fit import torch_window_scores
from training.kpi.model import WindowVAE
from training.kpi.scoring import onnx_scores
from training.onnx_scoring import cpu_session

INPUT = "window"
OUTPUT = "score"
PARITY_TOLERANCE = 1e-4  # max |torch - onnx| relative to the windows' 99th-percentile score


class ParityError(RuntimeError):
    pass


class WindowScoreGraph(nn.Module):
    def __init__(self, vae: WindowVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.vae.score(window)


def export_window_graph(vae: WindowVAE, path: Path) -> None:
    vae = vae.cpu().eval()
    export_graph(WindowScoreGraph(vae), torch.randn(2, vae.window), path, [INPUT], [OUTPUT])


def check_parity(vae: WindowVAE, onnx_path: Path, windows: np.ndarray) -> float:
    """Torch and onnxruntime scores of the same real windows must agree; returns the relative difference.

    Relative to the 99th percentile of the scores, the scale a threshold lives at (the
    thresholds are calibrated afterwards, on the graph's own scores).
    """
    if len(windows) == 0:
        raise ParityError("no windows to check parity on")
    ref = torch_window_scores(vae, windows)
    got = onnx_scores(cpu_session(onnx_path), windows)
    if got.shape != ref.shape or not np.isfinite(got).all():
        raise ParityError(f"the ONNX graph returned {got.shape} scores, or NaN/infinity, for {ref.shape}")
    scale = max(float(np.percentile(np.abs(ref), 99)), 1e-6)
    diff = float(np.max(np.abs(ref - got)) / scale)
    if diff > PARITY_TOLERANCE:
        raise ParityError(f"torch and onnxruntime scores differ by {diff:.2e} of the score scale (p99)")
    return diff
