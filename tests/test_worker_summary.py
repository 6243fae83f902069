"""The worker's summary line (worker/summary.py): what it did since the line before, from its counters."""

from __future__ import annotations

from worker.metrics import new_metrics
from worker.summary import Summary


def test_the_summary_line_gives_what_happened_since_the_last_one() -> None:
    metrics, _ = new_metrics()
    now = [100.0]
    summary = Summary(metrics, 60, clock=lambda: now[0])
    metrics.consumed.labels(topic="points").inc(1700)
    metrics.consumed.labels(topic="images").inc(28)
    metrics.scored.labels(model="kpi-vae:1").inc(1709)
    metrics.alerts.labels(model="kpi-vae:1").inc(12)
    metrics.dead_letters.labels(reason="schema").inc(5)
    metrics.dead_letters.labels(reason="too_large").inc(2)
    metrics.consumer_lag.labels(topic="points", partition="0").set(40)
    now[0] = 130.0
    assert summary.tick() is None  # not due yet
    now[0] = 160.0
    assert summary.tick() == (
        "last 60 s: 1,728 records (28.8/s), 1,709 scored, 12 alerts, 7 dead letters (schema 5, too_large 2), "
        "lag 40"
    )
    metrics.consumed.labels(topic="points").inc(10)
    now[0] = 220.0
    assert summary.tick() == "last 60 s: 10 records (0.2/s), 0 scored, 0 alerts, 0 dead letters, lag 40"


def test_an_interval_of_zero_never_logs() -> None:
    metrics, _ = new_metrics()
    now = [0.0]
    summary = Summary(metrics, 0, clock=lambda: now[0])
    now[0] = 1e6
    assert summary.tick() is None
