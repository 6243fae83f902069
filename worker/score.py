"""Score a batch: one onnxruntime run per slice of at most --max-batch rows; the graph computes the score."""

from __future__ import annotations

import numpy as np

from worker.registry import LoadedModel


def score_batch(model: LoadedModel, inputs: np.ndarray, max_batch: int) -> np.ndarray:
    """Scores (float64, one per row) of `inputs` (n, *record_shape) float32."""
    input_name = model.manifest.input.name
    score_name = model.manifest.outputs["score"].name
    out = []
    for start in range(0, len(inputs), max_batch):
        [scores] = model.session.run([score_name], {input_name: inputs[start : start + max_batch]})
        out.append(scores)
    scores = np.concatenate(out).astype(np.float64)
    if scores.shape != (len(inputs),):
        raise ValueError(f"model {model.key} returned {scores.shape} scores for {len(inputs)} records")
    return scores
