"""The checkpoint: flush the producer, check that every output was acknowledged, and only then commit
the input offsets, never past a record still waiting in a batch.

At least once: a record's offset is committed only once its output (alert, score message or dead
letter) is acknowledged. Once an output is lost, this process commits nothing more: a restart
re-reads from the last commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from worker.batch import Batch
from worker.health import Health
from worker.kafka.protocol import CommitRejected, Delivery, Sink, Source
from worker.metrics import Metrics

log = logging.getLogger(__name__)

Positions = dict[tuple[str, int], int]  # (topic, partition) -> offset


class DeliveryError(RuntimeError):
    """An output was not acknowledged: the inputs behind it must not be committed."""


def lowest_offsets(batches: Iterable[Batch]) -> Positions:
    """Per partition, the lowest offset of a record in `batches`: a commit must stay below it."""
    low: Positions = {}
    for batch in batches:
        for item in batch.items:
            m = item.message
            tp = (m.topic, m.partition)
            if m.offset < low.get(tp, m.offset + 1):
                low[tp] = m.offset
    return low


class OffsetTracker:
    """Which input offsets may be committed: all handed to the pipeline, below anything still waiting."""

    def __init__(self) -> None:
        self._next: Positions = {}  # one past the highest offset handed to the pipeline
        self._committed: Positions = {}

    def seen(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1

    def position(self, topic: str, partition: int) -> int | None:
        """One past the last offset handed to the pipeline, if any was."""
        return self._next.get((topic, partition))

    def committable(self, waiting: Positions, again: bool = False) -> Positions:
        """Offsets to commit: per partition, the lowest offset still waiting, else one past the last seen.

        Only those past the last commit, unless `again` (an asynchronous commit may have failed).
        Call only after the outputs of everything handed over so far are acknowledged.
        """
        out = {}
        for tp, nxt in self._next.items():
            position = min(nxt, waiting.get(tp, nxt))
            if position > self._committed.get(tp, -1) or again:
                out[tp] = position
        return out

    def committed(self, offsets: Positions) -> None:
        self._committed.update(offsets)

    def keep_only(self, partitions: set[tuple[str, int]]) -> None:
        """After a rebalance: forget partitions now owned by another worker."""
        for tp in [tp for tp in self._next if tp not in partitions]:
            self._next.pop(tp, None)
            self._committed.pop(tp, None)


STALL_S = 3.0  # a flush waiting this long: /readyz says so (within 5 s of the first output held)
FLUSH_SLICE_S = 0.5  # a flush waits in slices this long, to keep health and reports current
REPORT_S = 30.0  # and the log, this often


class Checkpoint:
    """Flush-then-commit, on the loop's thread: periodically (`due`), on a rebalance and at the stop."""

    # Whether the worker must score and publish every record in hand before commit() (exactly-once,
    # worker/transaction.py); here a commit goes below the records still waiting.
    drain_first = False

    def __init__(
        self,
        consumer: Source,
        producer: Sink,
        metrics: Metrics,
        health: Health,
        interval_ms: int,
        delivery_timeout_ms: int = 120_000,
    ) -> None:
        self.delivery_timeout_s = delivery_timeout_ms / 1000.0
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics
        self.health = health
        self.interval_s = interval_ms / 1000.0
        self.offsets = OffsetTracker()
        self._sent: list[Delivery] = []  # outputs sent since the last flush
        self._halted = False
        self._last_commit = time.monotonic()

    def expect(self, delivery: Delivery) -> None:
        """An output was handed to the producer: the next commit waits for its acknowledgement."""
        self._sent.append(delivery)

    def due(self) -> bool:
        return time.monotonic() - self._last_commit >= self.interval_s

    def halt(self) -> None:
        """Commit nothing more: something broke and a record may have no output (librdkafka calls the
        revocation callback from close(), which would otherwise commit past it)."""
        self._halted = True

    @property
    def halted(self) -> bool:
        return self._halted

    def commit(self, waiting: Iterable[Batch], wait: bool) -> bool:
        """Flush the outputs; only if every one was acknowledged, commit what lies below `waiting`.

        `waiting`: the batches whose outputs are not yet with the producer; every other record's
        output is, so the flush covers it. The periodic commit (wait=False) does not wait for the
        broker's answer: waiting stalled the loop for 17 ms every second and up to 120 ms now and
        then (measured at 1,000 records/s; now about 5 ms, the flush). One that fails leaves its
        records to the next commit, or to be read again. With wait=True every position is sent
        again, so the partitions' next owner starts exactly here even if a periodic commit failed.
        False if the commit did not go through (see CommitRejected).
        """
        if self._halted:
            return False
        below = lowest_offsets(waiting)
        self.flush()
        offsets = self.offsets.committable(below, again=wait)
        self._last_commit = time.monotonic()
        if not offsets:
            self.health.committed()
            return True
        try:
            self.consumer.commit(offsets, wait=wait)
        except CommitRejected as exc:
            # A rebalance, or the coordinator out of reach: the next commit (or the next owner)
            # covers these records.
            log.warning("commit skipped (%s); the records will be committed later or re-read", exc)
            return False
        self.offsets.committed(offsets)
        self.metrics.commits.inc()
        self.health.committed()
        return True

    def flush(self) -> int:
        """Wait for every output sent so far; raise DeliveryError (and halt) unless all were acknowledged.

        The producer retries until --delivery-timeout-ms; meanwhile this waits (the loop consumes
        nothing more: backpressure), keeps the liveness clock turning, turns /readyz to 503 after
        STALL_S and says every REPORT_S what is held and why."""
        sent, self._sent = self._sent, []
        started = time.monotonic()
        deadline = started + self.delivery_timeout_s + 10.0  # the producer gives up first
        reported = started
        while True:
            try:
                self.producer.flush(FLUSH_SLICE_S)
            except Exception as exc:  # kafka-python raises KafkaTimeoutError when the flush times out
                log.debug("flush did not complete within %.1f s: %s", FLUSH_SLICE_S, exc)
            pending = [d for d in sent if not d.is_done]
            now = time.monotonic()
            if not pending or now >= deadline:
                break
            self.health.beat()
            if now - started >= STALL_S:
                self._stalled(True)
            if now - reported >= REPORT_S:
                reported = now
                self._report_stall(len(pending), now - started, deadline - now)
        self._stalled(False)
        failed = [d for d in sent if not d.succeeded()]
        if failed:
            self._halted = True
            self.metrics.produce_errors.inc(len(failed))
            first = failed[0].exception if failed[0].is_done else "no acknowledgement before the timeout"
            raise DeliveryError(
                f"{len(failed)} of {len(sent)} outputs were not acknowledged: {first} (outputs wait up "
                f"to --delivery-timeout-ms, {self.delivery_timeout_s:.0f} s); nothing was committed past them"
            )
        return len(sent)

    def _stalled(self, stalled: bool) -> None:
        if stalled == self.health.outputs_stalled:
            return
        self.health.outputs_stalled = stalled
        if stalled:
            self.health.kafka_problem = "outputs not acknowledged by Kafka; consuming is paused"
            log.warning("outputs not acknowledged for %.0f s (last producer error: %s); consuming is paused "
                        "and /readyz says 503 until they are", STALL_S, self._last_error())  # fmt: skip
        else:
            self.health.kafka_problem = None
            log.info("outputs acknowledged again; consuming resumes")

    def _last_error(self) -> str:
        return self.producer.last_error() or "no error reported yet; the broker may be unreachable"

    def _report_stall(self, pending: int, waited_s: float, left_s: float) -> None:
        log.warning(
            "outputs stalled for %.0f s: %d not yet acknowledged by Kafka (last producer error: %s); "
            "consuming is paused and nothing is committed past them; giving up in %.0f s "
            "(--delivery-timeout-ms)", waited_s, pending, self._last_error(), left_s,
        )  # fmt: skip
