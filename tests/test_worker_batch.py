"""The batch stage (worker/batch.py): batches per model, ready when full or old."""

from __future__ import annotations

import numpy as np

from schemas import image_message
from tests.worker_fakes import decoded
from worker.batch import Batcher
from worker.checkpoint import lowest_offsets
from worker.kinds import kinds_for
from worker.settings import WorkerSettings


def test_batcher_by_size_by_time_and_pending_offsets(tiny_models) -> None:
    kind = kinds_for(tiny_models, WorkerSettings(metrics_port=0))["tiny-vae:1"]
    batcher = Batcher(max_batch=3, max_wait_ms=50)
    raw = image_message(np.zeros((28, 28), np.uint8))
    items = [decoded(raw, tiny_models, offset=o, partition=o % 2)[1] for o in range(5)]
    assert batcher.add(kind, items[0]) is None and batcher.add(kind, items[1]) is None
    full = batcher.add(kind, items[2])
    assert full is not None and [i.message.offset for i in full.items] == [0, 1, 2]
    batcher.add(kind, items[3])
    batcher.add(kind, items[4])
    assert lowest_offsets(batcher.open_batches()) == {("in", 1): 3, ("in", 0): 4}
    [open_batch] = batcher.open_batches()
    opened = open_batch.opened_at
    assert batcher.due(now=opened + 0.01) == []
    assert 0 < batcher.seconds_to_next_due(now=opened + 0.01) <= 0.05
    [due] = batcher.due(now=opened + 0.06)
    assert len(due.items) == 2 and len(batcher) == 0 and lowest_offsets(batcher.open_batches()) == {}


def test_a_batch_makes_image_bytes_its_rows_uint8_scaled_float32_as_sent(tiny_models) -> None:
    """Images reach the model as record.pixels: uint8 ones x 1/255, float32 ones as sent, mixed in a batch."""
    kind = kinds_for(tiny_models, WorkerSettings(metrics_port=0))["tiny-vae:1"]
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(3)]
    floats = [rng.random((28, 28), dtype=np.float32) for _ in range(2)]
    raws = [image_message(images[0]), image_message(floats[0]), image_message(images[1]),
            image_message(images[2]), image_message(floats[1])]  # fmt: skip
    items = [decoded(raw, tiny_models, offset=o)[1] for o, raw in enumerate(raws)]
    expected = np.stack([item.record.pixels for item in items])
    np.testing.assert_array_equal(expected[0], images[0].astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(expected[1], floats[0])
    mixed = Batcher(max_batch=5, max_wait_ms=50)
    [full] = [b for item in items if (b := mixed.add(kind, item)) is not None]
    full.seal()
    full.seal()  # a second call does not scale again
    np.testing.assert_array_equal(full.inputs(), expected)
    only_uint8 = Batcher(max_batch=3, max_wait_ms=50)
    [full] = [b for i in (0, 2, 3) if (b := only_uint8.add(kind, items[i])) is not None]
    full.seal()
    np.testing.assert_array_equal(full.inputs(), expected[[0, 2, 3]])
