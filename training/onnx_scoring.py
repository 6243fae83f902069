"""Score images with a bundle's model.onnx through plain onnxruntime, as the worker will."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


def cpu_session(model_path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_outputs(
    session: ort.InferenceSession, images_u8: np.ndarray, batch: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, reconstructions) of uint8 images, pre-processed as the worker does (x / 255)."""
    name = session.get_inputs()[0].name
    scores, recons = [], []
    for i in range(0, len(images_u8), batch):
        x = images_u8[i : i + batch].astype(np.float32) * np.float32(1.0 / 255.0)
        score, recon = session.run(["score", "reconstruction"], {name: x})
        scores.append(score)
        recons.append(recon)
    return np.concatenate(scores).astype(np.float64), np.concatenate(recons)
