"""The worker's loop, top to bottom like the data flow:

  source (poll) -> decode (record, model, input) -> batch -> score (inference on its own thread)
  -> decide -> publish -> checkpoint (flush, then commit)

At least once: input offsets are committed only after the producer has acknowledged every
output (alert, score, dead letter) of the records below them. Stopping is a state: stop() lets
the loop finish, then the batches in hand are scored, the outputs flushed, the offsets committed
and the consumer closed (leaving the group).

On a rebalance (both Kafka clients run the callbacks inside poll(), on this thread) the batches
in hand are scored, the outputs flushed and the offsets committed before the partitions are
given up, so their next owner starts exactly where we stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from schemas import Reason, Rejection
from worker.batch import Batch, Batcher
from worker.checkpoint import Checkpoint
from worker.deadline import CallStuck
from worker.decode import decode_message
from worker.health import Health
from worker.kafka.protocol import Consumed, Partitions, Sink, Source
from worker.kinds import Held, RecordKind
from worker.lag import LagProbe
from worker.metrics import STAGES, BatchHistogram, Metrics
from worker.publish import Publisher
from worker.score import Scored, ScoreStage
from worker.serving.registry import ModelRegistry
from worker.settings import WorkerSettings
from worker.source import count_consumed
from worker.summary import Summary
from worker.swaps import ModelSwaps

log = logging.getLogger(__name__)

IDLE_POLL_MS = 200
BUSY_POLL_MS = 2


@dataclass(frozen=True)
class Parts:
    """Every part the loop runs, built in one place (worker/build.py `wire`): the loop only runs them."""

    kinds: dict[str, RecordKind]
    batcher: Batcher
    scoring: ScoreStage
    checkpoint: Checkpoint
    publisher: Publisher
    lag: LagProbe
    swaps: ModelSwaps
    summary: Summary


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        models: ModelRegistry,
        consumer: Source,
        producer: Sink,
        metrics: Metrics,
        health: Health,
        parts: Parts,
    ) -> None:
        self.s = settings
        self.models = models
        self.consumer = consumer
        self.producer = producer  # exactly-once: its Transactions (worker/transaction.py)
        self.metrics = metrics
        self.health = health
        self.kinds = parts.kinds
        self.batcher = parts.batcher
        self.scoring = parts.scoring
        self.checkpoint = parts.checkpoint
        self.publisher = parts.publisher
        self.lag = parts.lag
        self.swaps = parts.swaps  # new model versions, checked on the watcher's thread, between turns
        self.summary = parts.summary
        self._stop = threading.Event()
        self._fatal: BaseException | None = None  # raised in a rebalance callback, re-raised after poll
        self.committed_at_stop: bool | None = None  # None until the commit at the end of run() is made
        self._stages: dict[str, tuple[BatchHistogram.Child, ...]] = {}  # stage_seconds by model

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this); safe from any thread."""
        self._stop.set()
        self.health.stopping = True

    def run(self) -> None:
        """Consume until stop(); raises DeliveryError (nothing more committed) if an output is lost."""
        self.consumer.subscribe(self.s.topics, on_assigned=self.on_assigned, on_revoked=self.on_revoked)
        stuck = False
        try:
            self.lag.start()
            self.swaps.start()
            while not self._stop.is_set():
                self.step()
            self.committed_at_stop = self.drain()
        except BaseException as exc:
            # Whatever broke the loop may have left a record without its output: commit nothing
            # more (librdkafka calls the revocation callback from close(), which would commit).
            self.checkpoint.halt()
            stuck = isinstance(exc, CallStuck)
            raise
        finally:
            # Each step runs whatever the one before did: an error in cleanup (a broker gone at
            # close) is logged, and never hides the error that ended the loop. After a client call
            # that never returned, the clients are left alone: closing them may block the same way
            # (the group drops this member after its session timeout).
            steps = [self.swaps.stop, self.lag.stop, self.scoring.close]
            if not stuck:
                steps[2:2] = [self.consumer.close]
                steps.append(lambda: self.producer.close(10))
            for step in steps:
                try:
                    step()  # the consumer before the scoring thread: a revocation may still drain
                except Exception as exc:
                    log.warning("while stopping: %s: %s", type(exc).__name__, exc)

    def step(self) -> None:
        """One turn of the loop: poll, decode, score what is ready, publish what is scored, commit if due."""
        self.health.beat()
        self._apply_model_changes()
        polled = self.consumer.poll(self._poll_timeout_ms(), self.s.max_poll_records)
        if self._fatal is not None:
            raise self._fatal
        for message in polled:
            self._take(message)
        if polled:
            count_consumed(self.metrics, self.s.topics, polled)
            self.lag.update(self.checkpoint.offsets.position)
            self._report_kinds()
        for batch in self.batcher.due():
            self.scoring.submit(batch)
        published = False
        for result in self.scoring.completed():
            self._publish(result)
            published = True
        if published:  # what was just decided shows without waiting for a poll that brings records
            for kind in self.kinds.values():
                kind.after_publish(self.metrics)
        if self.checkpoint.due():
            self.commit(wait=False)
        self.summary.tick()

    def drain(self) -> bool:
        """Score every batch in hand, publish, flush the outputs, commit and wait for the commit.

        False if the commit did not go through (see CommitRejected): the records after the last
        commit are read again by whoever owns their partitions next."""
        for batch in self.batcher.drain():
            self.scoring.submit(batch)
        deadline = time.monotonic() + 120
        while self.scoring.busy():
            if time.monotonic() > deadline:
                raise TimeoutError("scoring did not finish within 120 s")
            for result in self.scoring.completed(wait_s=0.1):
                self._publish(result)
        return self.commit(wait=True)

    def commit(self, wait: bool) -> bool:
        """Flush, then commit below the records whose outputs are not yet with the producer."""
        if self.checkpoint.drain_first and (self.batcher.open_batches() or self.scoring.busy()):
            return self.drain()  # exactly-once: the transaction takes every record in hand
        # Every other batch has had its outputs handed to the producer (on this thread).
        waiting: list[Batch] = [*self.batcher.open_batches(), *self.scoring.in_flight()]
        return self.checkpoint.commit(waiting, wait)

    # -- stages ------------------------------------------------------------------------------

    def _take(self, message: Consumed) -> None:
        self.checkpoint.offsets.seen(message.topic, message.partition, message.offset)
        decoded = decode_message(message, self.models, self.kinds, self.s.max_message_bytes)
        if isinstance(decoded, Rejection):
            self.publisher.dead_letter(message, decoded.reason, decoded.error)
            return
        if isinstance(decoded, Held):
            return  # counted by its kind, reported once per poll
        model, item = decoded
        item.taken_at = time.time()
        full = self.batcher.add(self.kinds[model.key], item)
        if full is not None:
            self.scoring.submit(full)

    def _publish(self, result: Scored) -> None:
        """Outputs of a scored batch: decided and published, or dead letters if the model raised."""
        back_at = time.time()
        batch = result.batch
        model, items = batch.model, batch.items
        if result.error is not None:
            log.error("model %s failed on a batch of %d records: %s", model.key, len(items), result.error)
            for item in items:
                self.publisher.dead_letter(
                    item.message, Reason.SCORING_FAILED, f"{type(result.error).__name__}: {result.error}"
                )
        else:
            kind = batch.kind  # of the version that formed the batch: the one its outputs name
            verdicts = kind.decide(items, result.scores, batch.prepared, result.maps)
            alerts = self.publisher.outcomes(kind, items, verdicts, datetime.now(UTC), result.maps)
            self._count_scored(result, alerts, back_at)
        self.scoring.finish(batch)

    def _count_scored(self, result: Scored, alerts: int, back_at: float) -> None:
        batch = result.batch
        key, items, n = batch.model.key, batch.items, len(batch.items)
        self.metrics.inference_seconds.labels(model=key).observe(result.seconds)
        self.metrics.batch_size.labels(model=key).observe(n)
        self.metrics.scored.labels(model=key).inc(n)
        self.metrics.alerts.labels(model=key).inc(alerts)
        now = time.time()
        stamps = np.fromiter((i.message.timestamp or 0 for i in items), np.float64, n) / 1000.0
        taken = np.fromiter((i.taken_at for i in items), np.float64, n)
        known = stamps > 0  # a message without a Kafka timestamp has no latency to report
        self.metrics.end_to_end_seconds.labels(model=key).observe_many(np.maximum(0.0, now - stamps[known]))
        kafka, batching, scoring, handback, publish = self._stage_histograms(key)
        kafka.observe_many(np.maximum(0.0, taken[known] - stamps[known]))
        batching.observe_many(np.maximum(0.0, batch.submitted_at - taken))
        scored_at = min(max(result.done_at, batch.submitted_at), back_at)
        scoring.observe_n(scored_at - batch.submitted_at, n)  # the batch's records spent these together
        handback.observe_n(back_at - scored_at, n)
        publish.observe_n(max(0.0, now - back_at), n)

    def _stage_histograms(self, model: str) -> tuple[BatchHistogram.Child, ...]:
        """The model's stage_seconds children, in STAGES' order (looked up once per model)."""
        children = self._stages.get(model)
        if children is None:
            children = self._stages[model] = tuple(
                self.metrics.stage_seconds.labels(model=model, stage=s) for s in STAGES
            )
        return children

    def _apply_model_changes(self) -> None:
        """Model versions the watcher checked go into service here, between batches (worker/swaps.py)."""
        self.swaps.apply()

    def _report_kinds(self) -> None:
        for kind in self.kinds.values():
            kind.report(self.metrics)

    def _poll_timeout_ms(self) -> int:
        if self.scoring.busy():
            return BUSY_POLL_MS  # a batch is being scored: come back soon to publish it
        due = self.batcher.seconds_to_next_due()
        return IDLE_POLL_MS if due is None else max(0, min(IDLE_POLL_MS, int(due * 1000)))

    # -- rebalance ---------------------------------------------------------------------------

    def on_revoked(self, partitions: Partitions) -> None:
        """Before giving partitions up: score what we hold, flush, commit."""
        # Both clients give up every partition before a new assignment (eager rebalancing): until
        # it comes, nothing is consumed here, and /readyz says so (make chaos: a group rejoin after
        # the coordinator's broker died took 10 s, with /readyz at 200 throughout).
        self.health.partitions_assigned = False
        if self.checkpoint.halted or self.committed_at_stop:
            return  # also when closing (librdkafka) after a last drain that committed
        try:
            committed = self.drain()
        except Exception as exc:  # the clients would only log it: re-raised after poll
            self._fatal = exc
            return
        if self.committed_at_stop is not None:  # closing: a second try at the last commit
            self.committed_at_stop = committed

    def on_assigned(self, partitions: Partitions) -> None:
        kept = set(partitions)
        self.checkpoint.offsets.keep_only(kept)
        for kind in self.kinds.values():
            kind.keep_partitions(kept)
        self._report_kinds()
        self.lag.assigned(kept)
        self.metrics.assigned_partitions.set(len(kept))
        self.health.partitions_assigned = bool(kept)
        log.info("assigned partitions: %s", ", ".join(f"{t}:{p}" for t, p in sorted(kept)))
