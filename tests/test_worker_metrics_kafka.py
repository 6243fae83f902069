"""Metric points through the worker on the real broker: windows, alerts, late and duplicate points,
eviction, restarts. A hand-built bundle (tooling/metric_bundles.py) makes the alerts predictable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import AnomalyAlert, ScoreMessage, metric_message
from schemas.detect import PARTS, DetectorParams
from schemas.manifest import SeriesStats
from tests.worker_harness import WorkerThread, committed, end_offsets, produce, read_json, worker_settings
from tooling.metric_bundles import write_last_point_bundle

pytestmark = pytest.mark.integration

W = 8
T0 = datetime(2026, 11, 2, tzinfo=UTC)
KNOWN = {'cpu{host="a"}': SeriesStats(interval_s=60.0)}


@pytest.fixture(scope="module")
def metric_repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("metric-models")
    write_last_point_bundle(repo / "kpi-test" / "1", window=W, series=KNOWN)
    return repo


@pytest.fixture
def topics(worker_topics) -> dict[str, str]:
    return worker_topics("metrics")


def points(series: str, values: list[float], start: int = 0, labels=None, minutes=None):
    """(keys, values) of metric messages at one-minute steps (or the given minute of each point)."""
    minutes = minutes or list(range(start, start + len(values)))
    pairs = [metric_message(series, v, labels=labels, ts=T0 + timedelta(minutes=m))
             for v, m in zip(values, minutes, strict=True)]  # fmt: skip
    return [k for k, _ in pairs], [v for _, v in pairs]


def counter(w: WorkerThread, outcome: str) -> float:
    return w.sample("anomaly_worker_metric_points_total", model="kpi-test:1", outcome=outcome)


def drained(w: WorkerThread, topic: str, total: int) -> bool:
    done = sum(counter(w, o) for o in ("scored", "warming", "duplicate", "late"))
    return done >= total and not len(w.worker.batcher) and not w.worker.scoring.busy()


def wait_for(condition, timeout_s: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_spike_is_alerted_with_its_series_and_the_rest_scored(
    kafka_bootstrap, topics, metric_repository, transport
):
    values = [0.0, 1.0] * 8 + [10.0] + [0.0, 1.0] * 3  # the spike is point 16
    keys, msgs = points("cpu", values, labels={"host": "a"})
    with WorkerThread(worker_settings(kafka_bootstrap, metric_repository, topics, transport=transport)) as w:
        produce(kafka_bootstrap, topics["input"], msgs, keys)
        wait_for(lambda: drained(w, topics["input"], len(msgs)))
        w.stop()
        assert counter(w, "warming") == W - 1
        assert counter(w, "scored") == len(values) - (W - 1)
    [alert] = [AnomalyAlert.model_validate(a) for a in read_json(kafka_bootstrap, topics["alerts"], 1)]
    # The spike's window: 7 points alternating 0/1 (mean 3/7 or 4/7) then 10.
    assert alert.kind == "metric" and alert.value == 10.0 and alert.window == W
    assert alert.series == "cpu" and alert.labels == {"host": "a"} and alert.series_key == 'cpu{host="a"}'
    assert alert.ts == T0 + timedelta(minutes=16)
    # The detector's threshold (a tail probability of 1e-4 among the series' own scores), reached by
    # a part that looks at the point, which the alert names with its raw score and raw threshold.
    threshold = DetectorParams().threshold
    assert alert.threshold == threshold and alert.score >= alert.threshold
    assert alert.detector in ("vae", "level", "far") and alert.detector_score >= alert.detector_threshold
    assert alert.severity == pytest.approx(1 - threshold / (2 * alert.score))  # 0.5 at the threshold
    assert alert.model == "kpi-test" and alert.source.topic == topics["input"]
    scores = [ScoreMessage.model_validate(s) for s in read_json(kafka_bootstrap, topics["scores"])]
    # Every other scored point is a score message below its threshold (the points after the spike
    # are held back by the raised threshold after an alert, not alerted again).
    assert len(scores) == len(values) - (W - 1) - 1
    assert all(s.series_key == 'cpu{host="a"}' and s.score < s.threshold for s in scores)
    assert all(s.detector in PARTS for s in scores)
    ends = {p: end for p, end in end_offsets(kafka_bootstrap, topics["input"]).items() if end}
    assert committed(kafka_bootstrap, topics["group"], topics["input"]) == ends


def test_duplicate_and_late_points_are_counted_not_scored(kafka_bootstrap, topics, metric_repository):
    minutes = [*range(10), 9, 9, 3, 10, 11]  # two duplicates of minute 9, a late minute 3
    keys, msgs = points("cpu", [0.0] * len(minutes), labels={"host": "a"}, minutes=minutes)
    with WorkerThread(worker_settings(kafka_bootstrap, metric_repository, topics)) as w:
        produce(kafka_bootstrap, topics["input"], msgs, keys)
        wait_for(lambda: drained(w, topics["input"], len(msgs)))
        w.stop()
        assert counter(w, "duplicate") == 2 and counter(w, "late") == 1
        assert counter(w, "scored") == 5  # minutes 7, 8, 9, 10, 11
    scores = read_json(kafka_bootstrap, topics["scores"], 5)
    assert sorted(s["ts"] for s in scores) == [
        (T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (7, 8, 9, 10, 11)
    ]
    assert read_json(kafka_bootstrap, topics["dead"]) == []


def test_max_series_evicts_the_least_recently_updated(kafka_bootstrap, topics, metric_repository):
    # Three series, round robin, with room for two: every arrival evicts the series waiting longest,
    # so no series ever fills a window; a fourth series alone afterwards fills and scores.
    keys, msgs = [], []
    for minute in range(W + 2):
        for name in ("a", "b", "c"):
            k, m = points(name, [1.0], start=minute)
            keys += k
            msgs += m
    k, m = points("d", [1.0] * W)
    keys, msgs = keys + k, msgs + m
    settings = worker_settings(kafka_bootstrap, metric_repository, topics, max_series=2)
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], msgs, keys)
        wait_for(lambda: drained(w, topics["input"], len(msgs)))
        w.stop()
        evicted = w.sample("anomaly_worker_series_evicted_total", model="kpi-test:1")
        active = w.sample("anomaly_worker_series_active", model="kpi-test:1")
        assert evicted >= 3 * (W + 2) - 2
        assert active == 2 and len(w.worker.kinds["kpi-test:1"].windows) == 2
        assert counter(w, "scored") == 1  # d's W-th point
        assert counter(w, "warming") == len(msgs) - 1


def test_after_a_restart_series_warm_up_again_then_score(
    kafka_bootstrap, topics, metric_repository, transport
):
    """Window state lives in memory: a restarted worker (or a new owner) re-fills W points first."""
    settings = worker_settings(kafka_bootstrap, metric_repository, topics, transport=transport)
    keys, msgs = [], []
    for name in ("x", "y"):
        k, m = points(name, [1.0] * (W + 4))
        keys, msgs = keys + k, msgs + m
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], msgs, keys)
        wait_for(lambda: drained(w, topics["input"], len(msgs)))
        w.stop()
        assert counter(w, "scored") == 2 * 5
    keys, msgs = [], []
    for name in ("x", "y"):
        k, m = points(name, [1.0] * (W + 2), start=W + 4)
        keys, msgs = keys + k, msgs + m
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], msgs, keys)
        wait_for(lambda: drained(w, topics["input"], len(msgs)))
        warming = w.sample("anomaly_worker_series_warming", model="kpi-test:1")
        w.stop()
        # Only the new points were read (the first run committed), and each series re-warmed.
        assert counter(w, "warming") == 2 * (W - 1)
        assert counter(w, "scored") == 2 * 3
        assert warming == 0
    assert len(read_json(kafka_bootstrap, topics["scores"], 2 * 8)) == 2 * 8
