"""The consumer-lag gauge against the broker's own figure, on the real broker, with both transports.

The worker's loop is held inside poll() (a gate around its consumer) with a large backlog left
behind it, so its position and the topic's end offsets stand still while the gauge is compared
with them: nothing depends on how fast this machine consumes. The gate also shows that the lag
is measured while the loop itself is stopped."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import tests.worker_harness as harness
from schemas import metric_message
from schemas.manifest import SeriesStats
from tests.worker_harness import WorkerThread, end_offsets, produce, wait_for, worker_settings
from tooling.metric_bundles import write_last_point_bundle
from worker.app import Worker

pytestmark = pytest.mark.integration

RECORDS = 20_000
SERIES = 8  # series i goes to partition i % 2, so both partitions hold a backlog
T0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def metric_repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("lag-models")
    series = {f'cpu{{host="h{i}"}}': SeriesStats(interval_s=60.0) for i in range(SERIES)}
    write_last_point_bundle(repo / "kpi-test" / "1", window=8, series=series)
    return repo


def produce_backlog(bootstrap: str, topic: str) -> None:
    keys, values = [], []
    for n in range(RECORDS):
        i, minute = n % SERIES, n // SERIES
        key, value = metric_message("cpu", float(minute % 3), labels={"host": f"h{i}"},
                                    ts=T0 + timedelta(minutes=minute))  # fmt: skip
        keys.append(key)
        values.append(value)
    produce(bootstrap, topic, values, keys, partition=[n % SERIES % 2 for n in range(RECORDS)],
            linger_ms=20, batch_size=256 * 1024)  # fmt: skip


class Gate:
    """Wraps a worker's Source.poll: once the loop has been handed `limit` records, some from every
    partition, the next poll waits (the loop stands still) until the limit is raised."""

    def __init__(self, poll, partitions: int, limit: int) -> None:
        self.inner, self.partitions, self.limit = poll, partitions, limit
        self.handed: Counter[int] = Counter()
        self.cond = threading.Condition()
        self.holding = False

    def poll(self, timeout_ms: int, max_records: int) -> list:
        with self.cond:
            while self._full():
                self.holding = True
                self.cond.notify_all()
                self.cond.wait()
            self.holding = False
        got = self.inner(timeout_ms, max_records)
        self.handed.update(m.partition for m in got)
        return got

    def _full(self) -> bool:
        return len(self.handed) >= self.partitions and self.handed.total() >= self.limit

    def hold_at(self, limit: float) -> None:
        with self.cond:
            self.limit, self.holding = limit, False  # wait_held() waits for the loop to stop again
            self.cond.notify_all()

    def wait_held(self, timeout_s: float = 120) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.holding, timeout_s)


def lag_gauge(w: WorkerThread, topic: str, partition: int) -> float | None:
    labels = {"topic": topic, "partition": str(partition)}
    return w.registry.get_sample_value("anomaly_worker_consumer_lag_records", labels)


def close_to_broker(w: WorkerThread, bootstrap: str, topic: str, seen: list) -> bool:
    """The gauge of each partition within 10% of the broker's figure: its end offset (asked now)
    minus the worker's position (standing still behind the gate). `seen` keeps the last readings."""
    ends = end_offsets(bootstrap, topic)
    readings = []
    for partition, end in sorted(ends.items()):
        figure = end - w.worker.checkpoint.offsets.position(topic, partition)
        readings.append((partition, lag_gauge(w, topic, partition), figure))
    seen[:] = readings
    return all(g is not None and abs(g - figure) <= 0.1 * figure for _, g, figure in readings)


def test_the_lag_gauge_is_the_broker_figure_while_the_loop_stands_still(
    kafka_bootstrap, worker_topics, metric_repository, transport, monkeypatch
) -> None:
    topics = worker_topics("lag")
    produce_backlog(kafka_bootstrap, topics["input"])
    gates: list[Gate] = []

    def build_gated(settings, registry=None) -> Worker:
        worker = harness_build(settings, registry)
        gates.append(Gate(worker.consumer.poll, partitions=2, limit=4_000))
        worker.consumer.poll = gates[-1].poll
        return worker

    harness_build = harness.build_worker
    monkeypatch.setattr(harness, "build_worker", build_gated)
    settings = worker_settings(kafka_bootstrap, metric_repository, topics, transport=transport)
    seen: list = []
    with WorkerThread(settings) as w:
        gate = gates[0]
        try:
            for limit in (4_000, 12_000):  # two stops: the gauge follows the worker's position
                gate.hold_at(limit)
                assert gate.wait_held(), "the worker never read the records it was given"
                assert wait_for(lambda: close_to_broker(w, kafka_bootstrap, topics["input"], seen)), seen
                assert sum(figure for _, _, figure in seen) >= 5_000  # a real backlog, not a few records
        finally:
            gate.hold_at(float("inf"))
        w.stop()
        probe = w.worker.lag._thread
        assert wait_for(lambda: not probe.is_alive(), 60), "the lag probe outlived its worker"
