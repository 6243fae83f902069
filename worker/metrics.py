"""Every metric of the worker, built against one registry (tests use a fresh one)."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics(NamedTuple):
    consumed: Counter
    scored: Counter
    alerts: Counter
    dead_letters: Counter
    batch_size: Histogram
    inference_seconds: Histogram
    end_to_end_seconds: Histogram
    consumer_lag: Gauge
    commits: Counter
    produce_errors: Counter
    assigned_partitions: Gauge
    model_info: Gauge
    model_threshold: Gauge
    metric_points: Counter
    series_active: Gauge
    series_warming: Gauge
    series_evicted: Counter
    series_resets: Counter

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
            end_to_end_seconds=Histogram(
                p + "end_to_end_seconds",
                "From the input message's Kafka timestamp to its output being sent",
                ["model"],
                buckets=LATENCY_BUCKETS,
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
                "1 for each loaded model",
                ["model", "version", "provider"],
                registry=registry,
            ),
            model_threshold=Gauge(
                p + "model_threshold", "Alert threshold of each model", ["model"], registry=registry
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
        )
