"""Every metric of the worker, built against one registry (tests use a fresh one)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Finer below 100 ms, where a stage's share of a 50 ms p99 has to show (bench (e) reads them).
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02,
                 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
                 10.0)  # fmt: skip
STAGES = ("kafka", "batch", "score", "handback", "publish")  # stage_seconds labels, in a record's order
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class BatchHistogram(Collector):
    """A labelled histogram that takes a whole batch of observations in one numpy call.

    Per-record latencies at tens of thousands of records a second: one Histogram.observe()
    per record (a lock and a bucket search in Python each) was a visible share of the
    consume loop. Exposed exactly as a prometheus_client Histogram with the same buckets.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: list[str], buckets: tuple[float, ...],
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = np.array([*buckets, np.inf])
        self._children: dict[tuple[str, ...], BatchHistogram.Child] = {}
        self._lock = threading.Lock()
        registry.register(self)

    class Child:
        def __init__(self, bounds: np.ndarray) -> None:
            self.bounds = bounds
            self._bounds = bounds.tolist()
            self.counts = np.zeros(len(bounds), dtype=np.int64)
            self.sum = 0.0
            self.lock = threading.Lock()

        def observe_many(self, values: np.ndarray) -> None:
            if len(values) == 1:  # a batch of one (--max-batch 1): numpy's calls would cost more
                self.observe_n(float(values[0]), 1)
                return
            # Bucket i holds values <= bounds[i]: the first bound not below the value.
            counts = np.bincount(np.searchsorted(self.bounds, values), minlength=len(self.bounds))
            with self.lock:
                self.counts += counts
                self.sum += float(np.sum(values))

        def observe_n(self, value: float, n: int) -> None:
            """`n` observations of one value (a stage that every record of a batch spent together)."""
            i = bisect.bisect_left(self._bounds, value)
            with self.lock:
                self.counts[i] += n
                self.sum += value * n

    def labels(self, **labels: str) -> BatchHistogram.Child:
        key = tuple(str(labels[n]) for n in self.labelnames)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, BatchHistogram.Child(self.bounds))
        return child

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            with child.lock:
                cumulative, total = np.cumsum(child.counts).tolist(), child.sum
            bounds = [floatToGoString(b) for b in self.bounds.tolist()]
            family.add_metric(list(key), list(zip(bounds, cumulative, strict=True)), sum_value=total)
        yield family


class Metrics(NamedTuple):
    consumed: Counter
    scored: Counter
    alerts: Counter
    dead_letters: Counter
    batch_size: Histogram
    inference_seconds: Histogram
    end_to_end_seconds: BatchHistogram
    stage_seconds: BatchHistogram
    consumer_lag: Gauge
    commits: Counter
    produce_errors: Counter
    assigned_partitions: Gauge
    model_info: Gauge
    model_threshold: Gauge
    model_version: Gauge
    model_versions_refused: Counter
    model_newest_version_refused: Gauge
    version_policy_refused: Counter
    metric_points: Counter
    series_active: Gauge
    series_warming: Gauge
    series_evicted: Counter
    series_resets: Counter
    series_value: Gauge
    series_expected: Gauge
    series_lower: Gauge
    series_upper: Gauge
    series_alerts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        p = "anomaly_worker_"
        return cls(
            consumed=Counter(
                p + "records_consumed_total",
                "Records read from the input topics",
                ["topic"],
                registry=registry,
            ),
            scored=Counter(
                p + "records_scored_total", "Records scored by a model", ["model"], registry=registry
            ),
            alerts=Counter(
                p + "alerts_total", "Alerts published (score >= threshold)", ["model"], registry=registry
            ),
            dead_letters=Counter(
                p + "dead_letters_total", "Records dead-lettered, by reason", ["reason"], registry=registry
            ),
            batch_size=Histogram(
                p + "batch_size_records",
                "Records per inference call",
                ["model"],
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            inference_seconds=Histogram(
                p + "inference_seconds",
                "Time of one inference call",
                ["model"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end_seconds=BatchHistogram(
                p + "end_to_end_seconds",
                "From the input message's Kafka timestamp to its output being sent",
                ["model"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            stage_seconds=BatchHistogram(
                p + "stage_seconds",
                "Each scored record's time in each stage: kafka (from its Kafka timestamp until the "
                "loop took it: the producer, the broker, the fetch, the client's buffer), batch (until "
                "its batch went to the scoring thread), score (until its batch's scores were ready: "
                "the scoring queue and inference), handback (until the loop took the scores back), "
                "publish (until its output was handed to the producer: decision and serialisation; an "
                "output-less record too)",
                ["model", "stage"],
                buckets=STAGE_BUCKETS,
                registry=registry,
            ),
            consumer_lag=Gauge(
                p + "consumer_lag_records",
                "Records behind the end of each assigned partition",
                ["topic", "partition"],
                registry=registry,
            ),
            commits=Counter(
                p + "commits_total", "Offset commits after acknowledged outputs", registry=registry
            ),
            produce_errors=Counter(
                p + "produce_errors_total", "Outputs the broker did not acknowledge", registry=registry
            ),
            assigned_partitions=Gauge(
                p + "assigned_partitions", "Input partitions assigned to this worker", registry=registry
            ),
            model_info=Gauge(
                p + "model_info",
                "1 for each model version in service",
                ["model", "version", "provider"],
                registry=registry,
            ),
            model_threshold=Gauge(
                p + "model_threshold", "Alert threshold of each model", ["model"], registry=registry
            ),
            model_version=Gauge(
                p + "model_version",
                "Version in service of each model (by name); -1 for a version that is not a whole "
                "number (model_info names it)",
                ["model"],
                registry=registry,
            ),
            model_versions_refused=Counter(
                p + "model_versions_refused_total",
                "New versions found in the model repository and refused (a check failed; the running "
                "version stayed)",
                ["model"],
                registry=registry,
            ),
            model_newest_version_refused=Gauge(
                p + "model_newest_version_refused",
                "1 while a version of the model newer than the one in service (any, for a model not "
                "served), among those its version policy allows, was refused and its folder is still "
                "there; else 0",
                ["model"],
                registry=registry,
            ),
            version_policy_refused=Counter(
                p + "version_policy_refused_total",
                "Changes of --version-policy-file refused while running (unreadable, or naming a model "
                "the repository does not have); the policy before stayed",
                registry=registry,
            ),
            metric_points=Counter(
                p + "metric_points_total",
                "Metric points by outcome: scored (completed a window), warming (series has fewer "
                "than W points), duplicate (slot already filled), late (before the series' last point)",
                ["model", "outcome"],
                registry=registry,
            ),
            series_active=Gauge(
                p + "series_active", "Metric series held in memory", ["model"], registry=registry
            ),
            series_warming=Gauge(
                p + "series_warming",
                "Metric series holding fewer than W points (new, restarted, evicted or after a long gap)",
                ["model"],
                registry=registry,
            ),
            series_evicted=Counter(
                p + "series_evicted_total",
                "Series evicted to stay within --max-series (least recently updated first)",
                ["model"],
                registry=registry,
            ),
            series_resets=Counter(
                p + "series_window_resets_total",
                "Windows restarted by a gap of reset_gap or more missing points",
                ["model"],
                registry=registry,
            ),
            # --export-series: each chosen series' last scored point, what was expected and its band.
            **{
                f"series_{field}": Gauge(
                    p + f"series_{field}",
                    f"Series chosen by --export-series: {words} of the last scored point",
                    ["model", "series"],
                    registry=registry,
                )
                for field, words in (
                    ("value", "the value"),
                    ("expected", "the value the detector expected (NaN while warming up)"),
                    ("lower", "the normal band's low end (NaN while warming up)"),
                    ("upper", "the normal band's high end (NaN while warming up)"),
                )
            },
            series_alerts=Counter(
                p + "series_alerts_total",
                "Series chosen by --export-series: alerts published (a dashboard's annotations)",
                ["model", "series"],
                registry=registry,
            ),
        )


def new_metrics(registry: CollectorRegistry | None = None) -> tuple[Metrics, CollectorRegistry]:
    """The worker's metrics, on `registry` or a fresh one (never the process-wide default)."""
    registry = registry or CollectorRegistry()
    return Metrics.create(registry), registry
