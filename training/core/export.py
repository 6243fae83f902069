"""ONNX export at the pinned opset, and the check that the exported graph scores as torch does.

Every graph takes one input with a dynamic batch axis and named tensors; the score is computed
inside the graph from the latent mean, so the same input always gets the same score.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.core.bundle import OPSET
from training.core.onnx_scoring import DEFAULT_BATCH, cpu_session, onnx_scores

PARITY_TOLERANCE = 1e-4  # max |torch - onnx| relative to the inputs' 99th-percentile score


class ParityError(RuntimeError):
    pass


def export_graph(
    module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]
) -> None:
    """Export `module` (one input, dynamic batch axis 0) at the pinned opset."""
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


def check_parity(
    torch_scores: Callable[[np.ndarray], np.ndarray],
    onnx_path: Path,
    inputs: np.ndarray,
    batch: int = DEFAULT_BATCH,
) -> float:
    """Torch's and onnxruntime's scores of the same real (pre-processed) inputs must agree; returns
    the largest difference relative to the 99th percentile of the scores.

    That percentile is the scale a threshold lives at; the thresholds themselves are calibrated
    afterwards, on the graph's own scores, so a drifted graph must be caught here.
    """
    if len(inputs) == 0:
        raise ParityError("no inputs to check parity on")
    ref = np.asarray(torch_scores(inputs), dtype=np.float64)
    got = onnx_scores(cpu_session(onnx_path), inputs, batch)
    if got.shape != ref.shape or not np.isfinite(got).all():
        raise ParityError(f"the ONNX graph returned {got.shape} scores, or NaN/infinity, for {ref.shape}")
    scale = max(float(np.percentile(np.abs(ref), 99)), 1e-6)
    diff = float(np.max(np.abs(ref - got)) / scale)
    if diff > PARITY_TOLERANCE:
        raise ParityError(f"torch and onnxruntime scores differ by {diff:.2e} of the score scale (p99)")
    return diff


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
