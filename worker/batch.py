"""Micro-batches per model: a batch is ready when it is full (--max-batch) or old (--max-wait-ms)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from schemas import ImageRecord, MetricPoint
from worker.registry import LoadedModel
from worker.series import Window
from worker.transport import Consumed


@dataclass(slots=True)
class Item:
    """A decoded record waiting to be scored, with the message it came from and its model input."""

    message: Consumed
    record: ImageRecord | MetricPoint
    record_id: str
    row: np.ndarray  # the model input of this record: the image, or the series' scaled window
    window: Window | None = None  # metric points: the window, and what deciding on its score needs
    point_ts: float | None = None  # metric points: grid time of the point, seconds since the epoch


@dataclass
class Batch:
    model: LoadedModel
    capacity: int
    items: list[Item] = field(default_factory=list)
    opened_at: float = 0.0
    # The model input, filled row by row as records arrive (on the consume thread), so the
    # scoring thread does not have to assemble it.
    _rows: np.ndarray | None = None

    def append(self, item: Item) -> None:
        if self._rows is None:
            self._rows = np.empty((self.capacity, *self.model.record_shape), dtype=np.float32)
        self._rows[len(self.items)] = item.row
        self.items.append(item)

    def inputs(self) -> np.ndarray:
        return self._rows[: len(self.items)]

    def low_offsets(self) -> dict[tuple[str, int], int]:
        low: dict[tuple[str, int], int] = {}
        for item in self.items:
            tp = (item.message.topic, item.message.partition)
            if item.message.offset < low.get(tp, item.message.offset + 1):
                low[tp] = item.message.offset
        return low


class Batcher:
    """Collects items per model and hands out batches; knows which offsets are still waiting."""

    def __init__(self, max_batch: int, max_wait_ms: int) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._open: dict[str, Batch] = {}

    def add(self, model: LoadedModel, item: Item) -> Batch | None:
        """Add an item; returns the model's batch if that filled it."""
        batch = self._open.get(model.key)
        if batch is None:
            batch = self._open[model.key] = Batch(model, self.max_batch, opened_at=time.monotonic())
        batch.append(item)
        if len(batch.items) >= self.max_batch:
            return self._open.pop(model.key)
        return None

    def due(self, now: float | None = None) -> list[Batch]:
        """Batches whose oldest record has waited --max-wait-ms."""
        now = time.monotonic() if now is None else now
        keys = [k for k, b in self._open.items() if now - b.opened_at >= self.max_wait]
        return [self._open.pop(k) for k in keys]

    def drain(self) -> list[Batch]:
        """Every open batch, ready or not (shutdown, rebalance)."""
        batches = list(self._open.values())
        self._open.clear()
        return batches

    def seconds_to_next_due(self, now: float | None = None) -> float | None:
        if not self._open:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, min(b.opened_at for b in self._open.values()) + self.max_wait - now)

    def pending_offsets(self) -> dict[tuple[str, int], int]:
        """Lowest offset still waiting in a batch, per (topic, partition): the commit must stay below it."""
        low: dict[tuple[str, int], int] = {}
        for batch in self._open.values():
            for tp, offset in batch.low_offsets().items():
                if offset < low.get(tp, offset + 1):
                    low[tp] = offset
        return low

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._open.values())
