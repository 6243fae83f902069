"""The batch stage: micro-batches per model, ready when full (--max-batch) or old (--max-wait-ms),
whatever a poll returned. A batch's rows are filled one by one as its records arrive, into a buffer
of --max-batch rows it holds alone from its first record until its outputs are published (`RowBuffers`:
reused, never shared by two batches in flight; page-locked where the model runs on CUDA); its kind
turns them into the model input in one call when the batch is scored (worker/kinds/)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from schemas import Record
from worker.kafka.protocol import Consumed
from worker.serving.device import CUDA, pin_host_memory
from worker.serving.registry import LoadedModel

# How a row given as bytes reads: its element type, and the factor that makes it the model input
# (None: none). Images come as the bytes their record carried (worker/kinds/image.py).
RowFormat = tuple[np.dtype, np.float32 | None]


@dataclass(slots=True)
class Item:
    """A decoded record waiting to be scored, with the message it came from and its model input."""

    message: Consumed
    record: Record
    record_id: str
    row: np.ndarray | bytes  # this record's row of the batch: the series' raw window, or the image's bytes
    row_format: RowFormat | None = None  # set where `row` is bytes
    # What the record's kind needs after scoring (worker/kinds/); metric points: their Window.
    context: object = None
    taken_at: float = 0.0  # Unix time the loop took the message (the stage timings, worker/metrics.py)


class BatchKind(Protocol):
    """What a batch needs of its record kind (worker/kinds/base.py)."""

    model: LoadedModel
    row_dtype: type
    rows_are_input: bool  # the batch's rows go to the model as they are (so page-locking them pays)

    def model_inputs(self, rows: np.ndarray) -> tuple[np.ndarray, object]: ...


class RowBuffers:
    """Row buffers for batches, reused: a batch takes one at its first record and gives it back once
    its outputs are published (ScoreStage.finish), so two batches in flight never share one. The pool
    grows to the most batches ever held at once (open, queued, scoring, publishing), a handful, and
    keeps them. Buffers for a model on CUDA are page-locked once (cudaHostRegister), so its copy to
    the device goes straight from them; elsewhere they are ordinary memory."""

    def __init__(self) -> None:
        # Taken and given back on the loop's thread only (Batcher.add, ScoreStage.finish): no lock.
        self._free: dict[tuple[tuple[int, ...], str, bool], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...], dtype: type, pinned: bool) -> np.ndarray:
        key = (shape, np.dtype(dtype).str, pinned)
        free = self._free.get(key)
        if free:
            return free.pop()
        rows = np.empty(shape, dtype=dtype)
        if pinned:
            pin_host_memory(rows)  # the pool keeps it; unpinned if the pool itself goes
        return rows

    def give(self, rows: np.ndarray, pinned: bool) -> None:
        self._free.setdefault((rows.shape, rows.dtype.str, pinned), []).append(rows)


@dataclass
class Batch:
    kind: BatchKind
    capacity: int
    items: list[Item] = field(default_factory=list)
    opened_at: float = 0.0
    submitted_at: float = 0.0  # Unix time the batch went to the scoring thread
    # What the kind made of the rows besides the model input, for its decision (set by inputs()).
    prepared: object = None
    # The rows, filled one by one as records arrive (on the consume thread), so the scoring
    # thread does not have to assemble them; from `buffers` when given, until release().
    _rows: np.ndarray | None = None
    buffers: RowBuffers | None = None
    # Rows given as bytes, by format: their places and their bytes, made rows all at once by seal().
    # One join and one numpy call a batch, where an array per image cost the loop's thread several
    # numpy calls per record (py-spy: about 5 us of its 40 us a record).
    _packed: dict[RowFormat, tuple[list[int], list[bytes]]] = field(default_factory=dict)

    @property
    def model(self) -> LoadedModel:
        return self.kind.model

    @property
    def _pinned(self) -> bool:
        providers = self.model.providers
        return self.kind.rows_are_input and bool(providers) and providers[0] == CUDA

    def append(self, item: Item) -> None:
        if self._rows is None:
            row_shape = self.model.record_shape if item.row_format else item.row.shape
            shape = (self.capacity, *row_shape)
            self._rows = (self.buffers.take(shape, self.kind.row_dtype, self._pinned) if self.buffers
                          else np.empty(shape, dtype=self.kind.row_dtype))  # fmt: skip
        if item.row_format is None:
            self._rows[len(self.items)] = item.row
        else:
            places, chunks = self._packed.setdefault(item.row_format, ([], []))
            places.append(len(self.items))
            chunks.append(item.row)
        self.items.append(item)

    def release(self) -> None:
        """The batch's outputs are published: its row buffer goes back for another batch."""
        rows, self._rows = self._rows, None
        if rows is not None and self.buffers is not None:
            self.buffers.give(rows, self._pinned)

    def seal(self) -> None:
        """Make the rows given as bytes rows of the batch, all at once: on the loop's thread, as the
        batch goes to be scored. (Made on the scoring thread instead, where each numpy call must
        take the GIL back from the loop, the drain fell by a tenth in the measurements of
        docs/results.md#on-the-realistic-stream-what-holds-the-drain-back.)"""
        if not self._packed:
            return
        rows = self._rows[: len(self.items)]
        for (dtype, factor), (places, chunks) in self._packed.items():
            packed = np.frombuffer(b"".join(chunks), dtype).reshape(len(places), *rows.shape[1:])
            into = rows if len(places) == len(rows) else np.empty(packed.shape, rows.dtype)
            if factor is None:
                into[...] = packed
            else:
                np.multiply(packed, factor, out=into)
            if into is not rows:
                rows[places] = into
        self._packed = {}

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
        self.buffers = RowBuffers()

    def add(self, kind: BatchKind, item: Item) -> Batch | None:
        """Add an item for the model `kind` serves; returns that model's batch if this filled it."""
        key = kind.model.key
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(kind, self.max_batch, opened_at=time.monotonic(),
                                            buffers=self.buffers)  # fmt: skip
        batch.append(item)
        if len(batch.items) >= self.max_batch:
            return self._open.pop(key)
        return None

    def take(self, key: str) -> Batch | None:
        """The open batch of the model `key` ('name:version'), ready or not (that version is being
        replaced: worker/serving/watch.py)."""
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
