"""The batch stage: micro-batches per model, ready when full (--max-batch) or old (--max-wait-ms),
whatever a poll returned. A batch's model input is filled row by row as its records arrive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from schemas import Record
from worker.kafka.protocol import Consumed
from worker.registry import LoadedModel


@dataclass(slots=True)
class Item:
    """A decoded record waiting to be scored, with the message it came from and its model input."""

    message: Consumed
    record: Record
    record_id: str
    row: np.ndarray  # the model input of this record: the image, or the series' scaled window
    # What the record's kind needs after scoring (worker/kinds/); metric points: their Window.
    context: object = None


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


class Batcher:
    """Collects items per model and hands out batches."""

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

    def open_batches(self) -> list[Batch]:
        """The batches still filling: the commit must stay below their records."""
        return list(self._open.values())

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._open.values())
