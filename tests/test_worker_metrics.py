"""The worker's metrics (worker/metrics.py)."""

from __future__ import annotations

import numpy as np
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
