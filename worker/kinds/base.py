"""What a kind of record adds to the path every record takes (decode, batch, score, decide, publish).

A kind (the record's and the manifest's `kind`) says how a record becomes its model's input, which
rule decides on its score, which fields its outputs carry besides the common ones and under which
Kafka key, and what state it keeps per partition. One instance serves one loaded model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from schemas import Record, Rejection
from worker.batch import Item
from worker.decide import Verdicts
from worker.kafka.protocol import Consumed
from worker.metrics import Metrics
from worker.serving.registry import LoadedModel
from worker.settings import WorkerSettings


@dataclass(frozen=True, slots=True)
class Held:
    """A record taken in that needs no scoring and has no output now (e.g. a metric point that
    completes no window); its kind counts it."""

    model: LoadedModel
    why: str


class RecordKind(ABC):
    name: ClassVar[str]  # the `kind` of the records and manifests it serves
    row_dtype: ClassVar[type] = np.float32  # of an item's row in its batch
    rows_are_input: ClassVar[bool] = True  # model_inputs hands the rows to the model as they are

    def __init__(self, model: LoadedModel, settings: WorkerSettings) -> None:
        self.model = model

    @abstractmethod
    def prepare(self, message: Consumed, record: Record, record_id: str) -> Item | Held | Rejection:
        """The record as a batch item with its model input, held back, or rejected (a dead letter)."""

    def model_inputs(self, rows: np.ndarray) -> tuple[np.ndarray, object]:
        """A batch's model input from its items' rows, and what decide() needs of that preparation."""
        return rows, None

    @abstractmethod
    def decide(
        self, items: list[Item], scores: np.ndarray, prepared: object, explaining: np.ndarray | None = None
    ) -> Verdicts:
        """Alert or not, per scored item, in the batch's order (worker/decide.py); `prepared`: what
        model_inputs() returned beside the input; `explaining`: the graph's output read beside the
        score (LoadedModel.explain_output), if any."""

    def output_key(self, item: Item) -> str:
        """The Kafka key of the item's alert or score message."""
        return item.record_id

    def output_fields(self, item: Item, verdicts: Verdicts, i: int) -> dict[str, object]:
        """Fields of the item's alert beyond the common ones (a score message keeps those it has)."""
        return {}

    def explain(self, verdicts: Verdicts, maps: np.ndarray | None) -> dict[int, dict[str, object]] | None:
        """What explains each alert of a scored batch, made once for all of them (by batch position);
        None: nothing. `maps`: the batch's anomaly maps from the graph, if it computes them and
        --explain is on. Never raises for one record: an alert goes out without its explanation."""
        return None

    def alert_fields(
        self, item: Item, verdicts: Verdicts, i: int, explained: dict[int, dict[str, object]] | None
    ) -> dict[str, object]:
        """Fields only the item's alert carries (never a score message): what explains it (`explained`:
        what explain() made for the batch)."""
        return {}

    def keep_partitions(self, kept: set[tuple[str, int]]) -> None:  # noqa: B027 - most kinds keep nothing
        """After a rebalance: drop what is kept for partitions no longer assigned here."""

    def carry_over(self, previous: RecordKind) -> str | None:
        """When this kind's model replaces `previous`'s (a new version going into service): take
        over what `previous` keeps, if it fits this model. Returns why it was not taken over
        (the kind starts fresh), or None (taken over, or nothing to take)."""
        return None

    def report(self, metrics: Metrics) -> None:  # noqa: B027 - most kinds have no metrics of their own
        """Bring the kind's own metrics up to date (after each poll, and after a rebalance)."""

    def after_publish(self, metrics: Metrics) -> None:  # noqa: B027 - most kinds have nothing to add
        """After a turn of the loop published outputs: metrics that must not wait for the next poll
        (cheap: at most once per turn)."""
