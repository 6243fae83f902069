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
