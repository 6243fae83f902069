"""The worker's metrics (worker/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from worker.metrics import LATENCY_BUCKETS, BatchHistogram


def test_batch_histogram_exposes_what_a_prometheus_histogram_would() -> None:
    values = [0.0, 0.001, 0.0011, 0.02, 0.5, 3.0, 99.0, 0.0025]  # edges, between, beyond the last bucket
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bulk = BatchHistogram("lat_seconds", "doc", ["model"], LATENCY_BUCKETS, ours)
    plain = Histogram("lat_seconds", "doc", ["model"], buckets=LATENCY_BUCKETS, registry=theirs)
    bulk.labels(model="m").observe_many(np.array(values[:5]))
    bulk.labels(model="m").observe_many(np.array(values[5:]))
    bulk.labels(model="m").observe_many(np.array([]))
    for v in values:
        plain.labels(model="m").observe(v)
    exposed = [line for line in generate_latest(ours).decode().splitlines() if "created" not in line]
    expected = [line for line in generate_latest(theirs).decode().splitlines() if "created" not in line]
    assert exposed == expected
    assert 'lat_seconds_bucket{le="0.001",model="m"} 2.0' in exposed  # 0.0 and 0.001 (le: at or below)


def test_a_batch_histogram_takes_one_value_many_times_as_many_observations() -> None:
    from worker.metrics import new_metrics

    metrics, registry = new_metrics()
    child = metrics.stage_seconds.labels(model="m", stage="score")
    child.observe_n(0.004, 3)
    child.observe_many(np.array([0.004]))  # one value: the same bucket as observe_n
    child.observe_many(np.array([0.0005, 20.0]))  # on a bound (le is inclusive), and past the last
    labels = {"model": "m", "stage": "score"}

    def bucket(le: str) -> float:
        return registry.get_sample_value("anomaly_worker_stage_seconds_bucket", {**labels, "le": le})

    assert bucket("0.0005") == 1 and bucket("0.003") == 1 and bucket("0.004") == 5 and bucket("+Inf") == 6
    assert registry.get_sample_value("anomaly_worker_stage_seconds_sum", labels) == pytest.approx(
        4 * 0.004 + 0.0005 + 20.0)
