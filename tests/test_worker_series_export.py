"""--export-series (worker/series_export.py): which series are exported, their gauges, their alerts,
the cap, and a series leaving the export when it is no longer held."""

from __future__ import annotations

import logging

import numpy as np

from schemas.detect import Decisions
from worker.metrics import new_metrics
from worker.series_export import SeriesExport


def decisions(n: int, alert: list[bool] | None = None) -> Decisions:
    nan = np.full(n, np.nan)
    return Decisions(
        score=np.zeros(n), threshold=np.full(n, 4.0), part=np.zeros(n, np.int8), part_score=np.zeros(n),
        part_threshold=np.ones(n), alert=np.array(alert or [False] * n), warming=np.zeros(n, bool),
        expected=np.arange(n) + 10.0, lower=np.arange(n) + 8.0, upper=np.arange(n) + 12.0,
        reference=nan, unit=nan, period_s=nan, longest_run=nan,
    )  # fmt: skip


def sample(registry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"anomaly_worker_series_{name}", labels)


def test_matching_series_are_exported_with_their_band_and_alerts() -> None:
    metrics, registry = new_metrics()
    export = SeriesExport('api.*, disk{host="b"}', 10, "kpi")
    keys = ['api.latency{host="a"}', 'disk{host="a"}', 'disk{host="b"}']
    export.record(keys, np.array([1.0, 2.0, 3.0]), decisions(3, [True, False, False]))
    export.report(metrics, held=set(keys))
    assert export.chosen == {'api.latency{host="a"}', 'disk{host="b"}'}
    api = {"model": "kpi", "series": 'api.latency{host="a"}'}
    gauges = [sample(registry, g, **api) for g in ("value", "expected", "lower", "upper")]
    assert gauges == [1.0, 10.0, 8.0, 12.0]
    assert sample(registry, "alerts_total", **api) == 1.0
    disk_b = {"model": "kpi", "series": 'disk{host="b"}'}
    assert sample(registry, "value", **disk_b) == 3.0 and sample(registry, "alerts_total", **disk_b) == 0.0
    assert sample(registry, "value", model="kpi", series='disk{host="a"}') is None  # not chosen


def test_at_most_the_cap_is_exported_with_a_warning_and_a_series_not_held_leaves(caplog) -> None:
    metrics, registry = new_metrics()
    export = SeriesExport("s*", 2, "kpi")
    with caplog.at_level(logging.WARNING):
        export.record(["s1", "s2", "s3"], np.array([1.0, 2.0, 3.0]), decisions(3))
    assert export.chosen == {"s1", "s2"} and "--export-series-max (2)" in caplog.text
    export.report(metrics, held={"s1", "s2", "s3"})
    assert sample(registry, "value", model="kpi", series="s3") is None
    export.report(metrics, held={"s2", "s3"})  # s1 evicted, or its partition moved away
    assert sample(registry, "value", model="kpi", series="s1") is None
    assert sample(registry, "alerts_total", model="kpi", series="s1") is None
    export.record(["s3"], np.array([5.0]), decisions(1))  # its place is free again
    export.report(metrics, held={"s2", "s3"})
    assert sample(registry, "value", model="kpi", series="s3") == 5.0


def test_no_pattern_exports_nothing() -> None:
    export = SeriesExport("", 10, "kpi")
    assert not export
    metrics, registry = new_metrics()
    export.record(["a"], np.array([1.0]), decisions(1))
    export.report(metrics, held={"a"})
    assert sample(registry, "value", model="kpi", series="a") is None
