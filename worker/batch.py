"""The batch stage: micro-batches per model, ready when full (--max-batch) or old (--max-wait-ms),
whatever a poll returned. A batch's rows are filled one by one as its records arrive; its kind turns
them into the model input in one call when the batch is scored (worker/kinds/)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

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
    row: np.ndarray  # this record's row of the batch: the image, or the series' raw window
    # What the record's kind needs after scoring (worker/kinds/); metric points: their Window.
    context: object = None


class BatchKind(Protocol):
    """What a batch needs of its record kind (worker/kinds/base.py)."""

    model: LoadedModel
    row_dtype: type

    def model_inputs(self, rows: np.ndarray) -> tuple[np.ndarray, object]: ...


@dataclass
class Batch:
    kind: BatchKind
    capacity: int
    items: list[Item] = field(default_factory=list)
    opened_at: float = 0.0
    # What the kind made of the rows besides the model input, for its decision (set by inputs()).
    prepared: object = None
    # The rows, filled one by one as records arrive (on the consume thread), so the scoring
    # thread does not have to assemble them.
    _rows: np.ndarray | None = None

    @property
    def model(self) -> LoadedModel:
        return self.kind.model

    def append(self, item: Item) -> None:
        if self._rows is None:
            self._rows = np.empty((self.capacity, *item.row.shape), dtype=self.kind.row_dtype)
        self._rows[len(self.items)] = item.row
        self.items.append(item)

    def inputs(self) -> np.ndarray:
        """The model input of the whole batch (on the scoring thread: a kind's preparation that
        raises fails the batch as the model would, never the loop)."""
        inputs, self.prepared = self.kind.model_inputs(self._rows[: len(self.items)])
        return inputs


class Batcher:
    """Collects items per model and hands out batches."""

    def __init__(self, max_batch: int, max_wait_ms: int) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._open: dict[str, Batch] = {}

    def add(self, kind: BatchKind, item: Item) -> Batch | None:
        """Add an item for the model `kind` serves; returns that model's batch if this filled it."""
        key = kind.model.key
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(kind, self.max_batch, opened_at=time.monotonic())
        batch.append(item)
        if len(batch.items) >= self.max_batch:
            return self._open.pop(key)
        return None

    def take(self, key: str) -> Batch | None:
        """The open batch of the model `key` ('name:version'), ready or not (that version is being
        replaced: worker/watch.py)."""
        return self._open.pop(key, None)

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
