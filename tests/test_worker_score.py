"""The score stage (worker/score.py): one onnxruntime run per slice of at most --max-batch rows."""

from __future__ import annotations

import numpy as np

from worker.score import score_batch


def test_score_batch_slices_to_max_batch_and_matches_one_run(tiny_models) -> None:
    model = tiny_models.resolve(None)
    x = np.random.default_rng(0).random((70, 28, 28), dtype=np.float32)
    sliced = score_batch(model, x, max_batch=16)
    whole = score_batch(model, x, max_batch=1024)
    assert sliced.shape == (70,)
    np.testing.assert_allclose(sliced, whole, rtol=1e-5)
