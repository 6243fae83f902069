"""Run an exported graph on the CPU with plain onnxruntime, as the worker does, in batches (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

DEFAULT_BATCH = 1024


def cpu_session(model_path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_batched(
    session: ort.InferenceSession,
    inputs: np.ndarray,
    outputs: Sequence[str] = ("score",),
    batch: int = DEFAULT_BATCH,
) -> list[np.ndarray]:
    """The named outputs of the graph's one input over `inputs` (float32, already pre-processed), batch by
    batch, each concatenated over the batches; no inputs give empty outputs."""
    if len(inputs) == 0:
        return [np.zeros(0, np.float32) for _ in outputs]
    name = session.get_inputs()[0].name
    runs = [
        session.run(list(outputs), {name: np.ascontiguousarray(inputs[i : i + batch], dtype=np.float32)})
        for i in range(0, len(inputs), batch)
    ]
    return [np.concatenate(per_batch) for per_batch in zip(*runs, strict=True)]


def onnx_scores(session: ort.InferenceSession, inputs: np.ndarray, batch: int = DEFAULT_BATCH) -> np.ndarray:
    """The graph's `score` output per input row, as float64."""
    [scores] = run_batched(session, inputs, ("score",), batch)
    return scores.astype(np.float64)
