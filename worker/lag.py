"""The source stage's lag report: how many records each assigned partition holds past the worker's
position, from the broker's own end offsets.

A probe thread asks the broker for the end offsets of the assigned partitions every LAG_EVERY_S,
with a Kafka client of its own: neither client library may share a consumer between threads,
and a ListOffsets request on the loop's thread would stall the loop (and a rebalance in it)
whenever the broker is slow or away. The client's own high watermark is no substitute: it is
the one of the last fetch response, which read 0-287 for a true lag of 12,000-21,000.

The loop tells the probe what it holds by replacing one reference (a Snapshot), never by
changing one the probe may be reading: the partitions assigned and, per partition, one past the
last offset handed to the pipeline. lag = end offset - that position, never negative.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from worker.metrics import Metrics

log = logging.getLogger("worker")

LAG_EVERY_S = 5.0
QUERY_TIMEOUT_S = 10.0  # one answer from the broker; a round that waits longer reports nothing new
WARN_EVERY_S = 60.0  # a broker that stays away is one warning a minute, not one a round
STOP_WAIT_S = 2.0  # shutdown does not wait longer for a probe stuck on a broker (its thread is a daemon)

Partition = tuple[str, int]


class Offsets(Protocol):
    """The probe's own client (worker/kafka/*: KafkaPythonOffsets, ConfluentOffsets), used by its
    thread only. Both calls wait at most QUERY_TIMEOUT_S and raise if the broker did not answer."""

    def end_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        """The offset the next record of each partition will get."""
        ...

    def committed(self, partitions: list[Partition]) -> dict[Partition, int]:
        """The group's committed offsets (partitions without a commit are left out)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the loop holds: its partitions, and where it is in each (read by the probe's thread)."""

    assigned: frozenset[Partition] = frozenset()
    positions: Mapping[Partition, int] = field(default_factory=dict)


def lags(
    snapshot: Snapshot, ends: Mapping[Partition, int], committed: Mapping[Partition, int]
) -> dict[Partition, int]:
    """Records behind the end of each assigned partition. Where the worker has handed nothing to the
    pipeline yet it starts from the group's commit, so a partition stuck from the start still shows
    its backlog; with neither, the partition is left out."""
    out = {}
    for tp in snapshot.assigned:
        at = snapshot.positions.get(tp, committed.get(tp))
        end = ends.get(tp)
        if end is not None and at is not None:
            out[tp] = max(0, end - at)
    return out


def forget_lag(metrics: Metrics, kept: Container[Partition]) -> None:
    """After a rebalance: no lag is reported for partitions another worker reads now."""
    reported = {(s.labels["topic"], s.labels["partition"]) for m in metrics.consumer_lag.collect()
                for s in m.samples}  # fmt: skip
    for topic, partition in reported:
        if (topic, int(partition)) not in kept:
            metrics.consumer_lag.remove(topic, partition)


class LagProbe:
    """Sets the consumer_lag gauge from a thread of its own; without `connect` (the loop with stand-in
    clients) it only keeps the gauge to the assigned partitions."""

    def __init__(
        self, metrics: Metrics, connect: Callable[[], Offsets] | None = None, every_s: float = LAG_EVERY_S
    ) -> None:
        self.metrics = metrics
        self.connect = connect
        self.every_s = every_s
        self._snapshot = Snapshot()
        # Held while the gauge is set or pruned (never during a broker call), so a round that started
        # before a rebalance cannot set a partition the rebalance took away.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Offsets | None = None
        self._warned_at = -WARN_EVERY_S

    # -- the loop's side ---------------------------------------------------------------------

    def start(self) -> None:
        if self.connect is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="lag-probe", daemon=True)
        self._thread.start()

    def assigned(self, partitions: set[Partition]) -> None:
        """After a rebalance: measure these from now on, and drop the gauge of any other."""
        kept = frozenset(partitions)
        with self._lock:
            positions = {tp: at for tp, at in self._snapshot.positions.items() if tp in kept}
            self._snapshot = Snapshot(kept, positions)
            forget_lag(self.metrics, kept)

    def update(self, position: Callable[[str, int], int | None]) -> None:
        """After a poll: the worker's position in each assigned partition (`position`: one past the
        last offset handed to the pipeline, None before the first)."""
        held = self._snapshot.assigned
        positions = {tp: at for tp in held if (at := position(*tp)) is not None}
        self._snapshot = Snapshot(held, positions)  # one reference replaced: the probe sees old or new

    def stop(self) -> None:
        """Safe to call more than once; the thread closes its client on its way out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)

    # -- the probe's thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                self.measure()
        finally:
            if self._client is not None:
                self._client.close()

    def measure(self) -> bool:
        """One round: ask the broker, then set the gauge. False if the broker did not answer: the
        gauge keeps its last values."""
        asked = self._snapshot
        partitions = sorted(asked.assigned)
        if not partitions:
            return True
        try:
            client = self._client = self._client or self.connect()
            ends = client.end_offsets(partitions)
            unread = [tp for tp in partitions if tp not in asked.positions]
            committed = client.committed(unread) if unread else {}
        except Exception as exc:  # each client raises its own errors; the loop goes on regardless
            self._warn(exc)
            return False
        self._publish(ends, committed)
        return True

    def _publish(self, ends: Mapping[Partition, int], committed: Mapping[Partition, int]) -> None:
        with self._lock:
            # The snapshot as it is now: the freshest positions, and only partitions still assigned.
            for (topic, partition), lag in lags(self._snapshot, ends, committed).items():
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_S:
            log.debug("the lag probe got no end offsets: %s", exc)
            return
        self._warned_at = now
        log.warning("could not read the end offsets for the lag metric (%s); it keeps its last values", exc)
