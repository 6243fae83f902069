"""bench/latency.py's reading of the worker's stage histograms: quantiles within buckets."""

from __future__ import annotations

import numpy as np
import pytest

from bench.latency import bucket_quantile, stage_counts, stage_line
from worker.metrics import STAGE_BUCKETS, STAGES


def cumulative(values_s: list[float]) -> np.ndarray:
    bounds = np.array([*STAGE_BUCKETS, np.inf])
    return np.cumsum(np.bincount(np.searchsorted(bounds, values_s), minlength=len(bounds))).astype(float)


def test_a_quantile_falls_within_the_bucket_that_holds_it() -> None:
    values = [0.0015] * 98 + [0.045, 0.045]  # 98 in (1, 2] ms, 2 in (40, 50] ms
    assert 1.0 <= bucket_quantile(cumulative(values), 0.5) <= 2.0
    assert 40.0 <= bucket_quantile(cumulative(values), 0.99) <= 50.0
    assert bucket_quantile(cumulative([20.0] * 10), 0.99) == STAGE_BUCKETS[-1] * 1000  # beyond the last bound
    assert np.isnan(bucket_quantile(cumulative([]), 0.5))


def test_the_stage_histograms_are_read_from_the_exposition_summed_over_models(monkeypatch) -> None:
    from prometheus_client import generate_latest

    from worker.metrics import new_metrics

    metrics, registry = new_metrics()
    metrics.stage_seconds.labels(model="a:1", stage="score").observe_many(np.array([0.004, 0.004]))
    metrics.stage_seconds.labels(model="b:1", stage="score").observe_many(np.array([0.2]))
    metrics.stage_seconds.labels(model="a:1", stage="kafka").observe_many(np.array([0.001]))

    class Reply:
        def read(self) -> bytes:
            return generate_latest(registry)

    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout: Reply())
    counts = stage_counts(9999)
    assert set(counts) == {"score", "kafka"}
    assert counts["score"][-1] == 3 and counts["kafka"][-1] == 1
    assert bucket_quantile(counts["score"], 0.5) == pytest.approx(4.0, abs=1.0)
    assert stage_line({s: (1.0, 2.0) for s in STAGES}).startswith("kafka 1.0/2.0; batch")
