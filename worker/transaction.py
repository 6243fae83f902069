"""Exactly-once (`--processing-guarantee exactly-once`): each commit is one Kafka transaction that holds
the outputs (alerts, score messages, dead letters) and the input offsets they answer for.

- A transaction opens before the first output after a commit (`Transactions.send`) and is committed at
  each commit point (every --commit-interval-ms, on a rebalance's revocation, at the stop).
- A commit point first scores every record in hand and publishes its outputs (the worker drains:
  `TransactionalCheckpoint.drain_first`), so that the offsets sent with the transaction, one past every
  record handed to the pipeline, cover exactly the records whose outputs are in it. (The at-least-once
  checkpoint commits below records still in batches while later records' outputs, dead letters among
  them, are already out: in a transaction those outputs would come again after a restart.)
- Records their kind holds back (a metric point that completes no window) have no output, now or
  later: their offsets are committed with the others, as at least once does. What they leave in the
  series' windows is not in the transaction; a restart warms the windows up again.
- The offsets go with the consumer's group metadata (KIP-447): the group coordinator refuses them
  from a worker that has lost the partitions to a rebalance.
- If an output is refused or the commit fails, the transaction is aborted (readers with
  isolation.level=read_committed never see its outputs, and its offsets do not count) and the worker
  exits 1 (TransactionAborted, a DeliveryError). A restart reads again from the last committed
  transaction. Going back within the process (a seek) would also need the series' windows, the batches
  and the consumer's fetch position rewound; and most aborts have a cause that a retry meets again.
- A producer fenced by another with the same transactional.id exits 1 at once (ProducerFenced).
- Each transactional call runs with the worker's own deadline (worker/deadline.py): librdkafka's can
  block for good when the coordinator goes away. A call past the deadline (the transaction's timeout,
  after which the broker aborts it anyway) stops the worker with exit 1 (CallStuck), and the producer
  is not touched again; while one waits the worker is not ready, and SIGTERM ends the wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NoReturn

from worker.batch import Batch
from worker.checkpoint import Checkpoint, DeliveryError
from worker.deadline import CallStuck, call_with_deadline
from worker.health import Health
from worker.kafka.protocol import (
    Delivery,
    ProducerFenced,
    TransactionalSink,
    TransactionalSource,
    TransactionFailed,
)
from worker.metrics import Metrics

log = logging.getLogger(__name__)


class TransactionAborted(DeliveryError):
    """The transaction was aborted: none of its outputs or offsets count; the worker must stop."""


class Transactions:
    """The producer the publisher sends through: it opens a transaction before the first output after
    a commit; the checkpoint commits it with the input offsets, or aborts it."""

    def __init__(self, sink: TransactionalSink, health: Health, deadline_s: float) -> None:
        self.sink = sink
        self.max_record_bytes = sink.max_record_bytes
        self.open = False
        self.health = health
        self.deadline_s = deadline_s  # for each transactional call: the transaction's own timeout
        self.stuck = False  # a call did not return: the producer may still be inside it

    def _bounded(self, what: str, call: Callable[[], None]) -> None:
        try:
            call_with_deadline(what, call, self.deadline_s, self.health)
        except CallStuck:
            self.stuck = True
            raise

    def prepare(self, topics: list[str]) -> None:
        self.sink.prepare(topics)

    def send(self, topic: str, key: bytes | None, value: bytes) -> Delivery:
        if not self.open:
            self._begin()
        try:
            return self.sink.send(topic, key, value)
        except TransactionFailed as exc:  # a producer in a fatal state; aborting says if it is fenced
            self.abort_after(exc)

    def flush(self, timeout_s: float) -> None:
        self.sink.flush(timeout_s)

    def last_error(self) -> str | None:
        return self.sink.last_error()

    def commit(self, offsets: dict[tuple[str, int], int], metadata: object) -> None:
        """The outputs sent since the last commit, and `offsets`, in one transaction."""
        if not self.open:
            self._begin()  # offsets only: records held back, with no output
        if offsets:
            self._bounded("send_offsets_to_transaction",
                          lambda: self.sink.send_offsets_to_transaction(offsets, metadata))  # fmt: skip
        self._bounded("commit_transaction", self.sink.commit_transaction)
        self.open = False

    def abort(self) -> None:
        if self.open and not self.stuck:
            self.open = False
            self._bounded("abort_transaction", self.sink.abort_transaction)

    def abort_after(self, cause: Exception) -> NoReturn:
        """Abort the transaction after `cause`, then raise TransactionAborted (ProducerFenced if the
        producer is fenced)."""
        try:
            self.abort()
        except (TransactionFailed, CallStuck) as exc:
            log.warning("the transaction could not be aborted either (%s); the broker aborts it at its "
                        "timeout, or a restart of this worker at once", exc)  # fmt: skip
        raise TransactionAborted(
            f"the transaction was aborted (read_committed readers never see its outputs, its offsets do "
            f"not count): {cause}"
        ) from cause

    def close(self, timeout_s: float) -> None:
        if self.stuck:  # the client may still be inside the stuck call: leave it to the process's exit
            return
        try:
            self.abort()  # only after a failure: a clean stop has committed
        except Exception as exc:  # said already, or to be: the broker aborts it anyway
            log.debug("abort at close: %s", exc)
        self.sink.close(timeout_s)

    def _begin(self) -> None:
        try:
            self._bounded("begin_transaction", self.sink.begin_transaction)
        except TransactionFailed as exc:
            raise TransactionAborted(f"a transaction could not be opened: {exc}") from None
        self.open = True


class TransactionalCheckpoint(Checkpoint):
    """The checkpoint of exactly-once: flush, check every delivery, then commit the transaction with the
    offsets one past every record handed over; abort it if anything failed."""

    drain_first = True  # the worker scores and publishes every record in hand before commit()

    def __init__(
        self,
        consumer: TransactionalSource,
        producer: Transactions,
        metrics: Metrics,
        health: Health,
        interval_ms: int,
        delivery_timeout_ms: int = 120_000,
    ) -> None:
        super().__init__(consumer, producer, metrics, health, interval_ms, delivery_timeout_ms)
        self.consumer: TransactionalSource = consumer
        self.producer: Transactions = producer

    def commit(self, waiting: Iterable[Batch], wait: bool) -> bool:
        """Commit the open transaction with the offsets of everything handed over (always waited for:
        `wait` is the at-least-once checkpoint's). Raises TransactionAborted or ProducerFenced."""
        if self._halted:
            return False
        if any(batch.items for batch in waiting):
            raise RuntimeError("a transaction cannot be committed while records wait in batches")
        offsets = self.offsets.committable({})
        self._last_commit = time.monotonic()
        if offsets or self.producer.open:
            try:
                self.flush()  # DeliveryError if an output was refused
                self.producer.commit(offsets, self.consumer.group_metadata())
            except (ProducerFenced, CallStuck):
                self._halted = True
                raise
            except (DeliveryError, TransactionFailed) as exc:
                self._halted = True
                self.producer.abort_after(exc)
            self.offsets.committed(offsets)
            self.metrics.commits.inc()
        self.health.committed()
        return True
