"""The worker's loop, wired top to bottom like the data flow:

  source (poll) -> route (decode, pick the model) -> batch -> score (inference on its own thread)
  -> publish -> commit

At least once: input offsets are committed only after the producer has acknowledged
every output (alert, score, dead letter) of the records below them. Stopping is a
state: stop() lets the loop finish, then the batches in hand are scored, the outputs
flushed, the offsets committed and the consumer closed (leaving the group).

On a rebalance (both Kafka clients run the callbacks inside poll(), on this thread) the
batches in hand are scored, the outputs flushed and the offsets committed before the
partitions are given up, so their next owner starts exactly where we stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry

from schemas import Reason, Rejection
from worker.batch import Batcher
from worker.health import Health
from worker.metrics import Metrics
from worker.offsets import OffsetTracker
from worker.publish import DeliveryError, Publisher
from worker.registry import ModelRegistry
from worker.route import Held, route
from worker.score import Scored, ScoreStage
from worker.series import SeriesWindows
from worker.settings import WorkerSettings
from worker.transport import CommitRejected, Consumed, Partitions, Sink, Source

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
IDLE_POLL_MS = 200
BUSY_POLL_MS = 2


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        models: ModelRegistry,
        consumer: Source,
        producer: Sink,
        metrics: Metrics,
        health: Health,
    ) -> None:
        self.s = settings
        self.models = models
        self.consumer = consumer
        self.metrics = metrics
        self.health = health
        self.publisher = Publisher(
            producer, settings.alerts_topic, settings.dead_letter_topic, settings.scores_topic, metrics
        )
        self.batcher = Batcher(settings.max_batch, settings.max_wait_ms)
        self.scoring = ScoreStage(settings.max_batch)
        self.offsets = OffsetTracker()
        self.windows = {
            m.key: SeriesWindows(m.manifest.preprocessing, settings.max_series)
            for m in models
            if m.manifest.kind == "metric"
        }
        self._series_reported: dict[str, Counter[str]] = {k: Counter() for k in self.windows}
        self._stop = threading.Event()
        self._fatal: BaseException | None = None  # raised in a rebalance callback, re-raised after poll
        self._commits_stopped = False  # once an output is lost, this process commits nothing more
        self._last_commit = time.monotonic()
        self._last_lag = 0.0
        self.committed_at_stop: bool | None = None  # None until the commit at the end of run() is made
        for m in models:
            metrics.model_threshold.labels(model=m.key).set(m.manifest.threshold)
            metrics.model_info.labels(m.manifest.name, m.manifest.version, m.providers[0]).set(1)

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this); safe from any thread."""
        self._stop.set()
        self.health.stopping = True

    def run(self) -> None:
        """Consume until stop(); raises DeliveryError (nothing more committed) if an output is lost."""
        self.consumer.subscribe(self.s.topics, on_assigned=self.on_assigned, on_revoked=self.on_revoked)
        try:
            while not self._stop.is_set():
                self.step()
            self.committed_at_stop = self.drain()
        except BaseException:
            # Whatever broke the loop may have left a record without its output: commit nothing
            # more (librdkafka calls the revocation callback from close(), which would commit).
            self._commits_stopped = True
            raise
        finally:
            self.consumer.close()  # before the scoring thread stops: a revocation may still drain
            self.scoring.close()
            self.publisher.producer.close(10)

    def step(self) -> None:
        """One turn of the loop: poll, route, score what is ready, commit if it is time."""
        self.health.beat()
        polled = self.consumer.poll(self._poll_timeout_ms(), self.s.max_poll_records)
        if self._fatal is not None:
            raise self._fatal
        for message in polled:
            self._handle(message)
        if polled:
            self._count_consumed(polled)
        if polled and self.windows:
            self._update_series_metrics()
        for batch in self.batcher.due():
            self.scoring.submit(batch)
        for result in self.scoring.completed():
            self._publish(result)
        if time.monotonic() - self._last_commit >= self.s.commit_interval_ms / 1000.0:
            self.commit(wait=False)
        if time.monotonic() - self._last_lag >= LAG_EVERY_S:
            self._update_lag()

    def drain(self) -> bool:
        """Score every batch in hand, flush the outputs, commit and wait for the commit.

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
        # Waited for, and every position again: the partitions' next owner (or the next run)
        # starts exactly here, even if a periodic commit before it failed.
        return self.commit(wait=True)

    # -- stages ------------------------------------------------------------------------------

    def _count_consumed(self, polled: list) -> None:
        if len(self.s.topics) == 1:
            self.metrics.consumed.labels(topic=self.s.topics[0]).inc(len(polled))
            return
        for topic, n in Counter(m.topic for m in polled).items():
            self.metrics.consumed.labels(topic=topic).inc(n)

    def _handle(self, message: Consumed) -> None:
        self.offsets.seen(message.topic, message.partition, message.offset)
        routed = route(message, self.models, self.s.max_message_bytes, self.windows)
        if isinstance(routed, Rejection):
            self.publisher.dead_letter(message, routed.reason, routed.error)
            return
        if isinstance(routed, Held):
            return  # counted by its series store, reported once per poll
        model, item = routed
        full = self.batcher.add(model, item)
        if full is not None:
            self.scoring.submit(full)

    def _publish(self, result: Scored) -> None:
        """Outputs of a scored batch: alerts, score messages, or dead letters if the model raised."""
        batch = result.batch
        model, items = batch.model, batch.items
        if result.error is not None:
            log.error("model %s failed on a batch of %d records: %s", model.key, len(items), result.error)
            for item in items:
                self.publisher.dead_letter(
                    item.message, Reason.SCORING_FAILED, f"{type(result.error).__name__}: {result.error}"
                )
        else:
            self.metrics.inference_seconds.labels(model=model.key).observe(result.seconds)
            self.metrics.batch_size.labels(model=model.key).observe(len(items))
            decisions = None
            if model.manifest.kind == "metric":
                # In the order the windows were made: each decision updates its series' state.
                prep = model.manifest.preprocessing
                scores = result.scores.tolist()
                decisions = [item.window.decide(prep, s) for item, s in zip(items, scores, strict=True)]
            alerts = self.publisher.outcomes(model, items, result.scores, datetime.now(UTC), decisions)
            self.metrics.scored.labels(model=model.key).inc(len(items))
            self.metrics.alerts.labels(model=model.key).inc(alerts)
            stamps = np.fromiter((i.message.timestamp or 0 for i in items), np.float64, len(items))
            stamps = stamps[stamps > 0]  # a message without a Kafka timestamp has no latency to report
            seconds = np.maximum(0.0, time.time() * 1000.0 - stamps) / 1000.0
            self.metrics.end_to_end_seconds.labels(model=model.key).observe_many(seconds)
        self.scoring.finish(batch)

    def commit(self, wait: bool) -> bool:
        """Flush the outputs; only if every one was acknowledged, commit what lies below the open batches.

        The periodic commit does not wait for the broker's answer: waiting stalled the loop for
        17 ms every second and up to 120 ms now and then (measured at 1,000 records/s; now about
        5 ms, the flush). One that fails leaves its records to the next commit, or to be read again.
        """
        # Every batch not in flight has had its outputs handed to the producer (on this
        # thread), so the flush below covers them.
        if self._commits_stopped:
            return False  # an output was lost: nothing more may be committed by this process
        waiting = self.batcher.pending_offsets()
        for tp, offset in self.scoring.pending_offsets().items():
            waiting[tp] = min(offset, waiting.get(tp, offset))
        try:
            self.publisher.flush()
        except DeliveryError:
            # Also stops the commit a closing consumer's revocation callback would make
            # (librdkafka calls it from close()).
            self._commits_stopped = True
            raise
        offsets = self.offsets.committable(waiting, again=wait)
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

    # -- helpers -----------------------------------------------------------------------------

    def _poll_timeout_ms(self) -> int:
        if self.scoring.busy():
            return BUSY_POLL_MS  # a batch is being scored: come back soon to publish it
        due = self.batcher.seconds_to_next_due()
        return IDLE_POLL_MS if due is None else max(0, min(IDLE_POLL_MS, int(due * 1000)))

    def _update_lag(self) -> None:
        # Our position is one past the last offset we were handed. consumer.position() is not
        # used: it can block on the coordinator, and a blocked loop stalls a rebalance.
        self._last_lag = time.monotonic()
        for topic, partition in self.consumer.assignment():
            end = self.consumer.highwater(topic, partition)
            position = self.offsets.position(topic, partition)
            if end is not None and position is not None:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                    max(0, end - position)
                )

    def _update_series_metrics(self) -> None:
        """Publish the series stores' running totals (what changed since the last poll)."""
        m = self.metrics
        for key, store in self.windows.items():
            m.series_active.labels(model=key).set(len(store))
            m.series_warming.labels(model=key).set(store.warming)
            now = Counter({o.value: n for o, n in store.outcomes.items()})
            now.update(evicted=store.evicted, resets=store.resets)
            before, self._series_reported[key] = self._series_reported[key], now
            for name, total in now.items():
                delta = total - before[name]
                if not delta:
                    continue
                if name == "evicted":
                    m.series_evicted.labels(model=key).inc(delta)
                elif name == "resets":
                    m.series_resets.labels(model=key).inc(delta)
                else:
                    m.metric_points.labels(model=key, outcome=name).inc(delta)

    def on_revoked(self, partitions: Partitions) -> None:
        """Before giving partitions up: score what we hold, flush, commit."""
        if self._commits_stopped or self.committed_at_stop:
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
        self.offsets.keep_only(kept)
        # Series of partitions that moved away are another worker's now; those we keep go on
        # where they were (the revocation committed exactly up to them).
        for store in self.windows.values():
            store.drop_partitions(kept)
        if self.windows:
            self._update_series_metrics()
        for topic, partition in list(self.metrics_lag_labels()):
            if (topic, int(partition)) not in kept:
                self.metrics.consumer_lag.remove(topic, partition)
        self.metrics.assigned_partitions.set(len(kept))
        self.health.partitions_assigned = bool(kept)
        log.info("assigned partitions: %s", ", ".join(f"{t}:{p}" for t, p in sorted(kept)))

    def metrics_lag_labels(self) -> set[tuple[str, str]]:
        return {(s.labels["topic"], s.labels["partition"]) for m in self.metrics.consumer_lag.collect()
                for s in m.samples}  # fmt: skip


def new_metrics(registry: CollectorRegistry | None = None) -> tuple[Metrics, CollectorRegistry]:
    registry = registry or CollectorRegistry()
    return Metrics.create(registry), registry
