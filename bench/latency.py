"""(e) produce -> output latency on a realistic stream, at a steady rate.

The stream: a 3-partition input topic, MNIST 1s and 4s with 5 % 5s (anomalies) among them, and a
scores topic, so every record has an output (an alert or a score message). A record's latency runs
from its create time (stamped by the producer) to its output's broker append time (the output
topics use LogAppendTime), so nothing on the reading side counts. The first WARMUP_S of each run
are sent but not counted: they measure start-up (the broker's JIT, the worker's first batches;
the first run after the broker starts had a p99 of 142-169 ms where the next ones had 77-92),
not the steady stream the figure is about.

Beside it, each stage's share inside the worker, from its `anomaly_worker_stage_seconds` histograms
(worker/metrics.py) read when the warm-up ends and after the run: p50 and p99 per stage, found within
the histogram's buckets as Prometheus' histogram_quantile finds them (so to within a bucket's width).

`python -m bench.run --only latency` runs this stage alone, --repeats times per transport.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kafka import TopicPartition

from bench.common import start_worker
from schemas import image_message
from tooling.broker import free_port_block
from tooling.kafka import STORED_PLAIN, consumer, create_topic, produce_at_rate
from tooling.process import wait_ready
from training.images.mnist import load_split
from worker.metrics import STAGE_BUCKETS, STAGES

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
WARMUP_S = 5.0


def stream_images(n: int, anomaly_share: float, seed: int = 0) -> list[np.ndarray]:
    """`n` training-set images: 1s and 4s, and `anomaly_share` of them 5s, in a shuffled order."""
    train = load_split("train")
    rng = np.random.default_rng(seed)
    normal = train.images[np.isin(train.labels, (1, 4))]
    fives = train.images[train.labels == 5]
    is_five = rng.random(n) < anomaly_share
    return [
        fives[rng.integers(len(fives))] if five else normal[rng.integers(len(normal))] for five in is_five
    ]


@dataclass
class LatencyRun:
    ms: np.ndarray  # from each record's create time to its output's append time, one per output read back
    stages: dict[str, tuple[float, float]]  # p50 and p99 (ms) of each stage inside the worker


def latency(bootstrap: str, repo: Path, rate: float, seconds: float, model: str, transport: str,
            partitions: int = 3, anomaly_share: float = 0.05) -> LatencyRun:  # fmt: skip
    """The run's latencies, past the warm-up: end to end, and per stage inside the worker."""
    run = uuid.uuid4().hex[:8]
    topic = create_topic(bootstrap, f"bench-latency-{run}", partitions, STORED_PLAIN)
    alerts = create_topic(bootstrap, f"bench-latency-alerts-{run}", 1, APPEND_TIME)
    scores = create_topic(bootstrap, f"bench-latency-scores-{run}", 1, APPEND_TIME)
    warmup = int(rate * WARMUP_S)
    images = stream_images(warmup + int(rate * seconds), anomaly_share)
    port = free_port_block(1)
    proc = start_worker(bootstrap, repo, topic, alerts, port, scores_topic=scores, default_model=model,
                        transport=transport)  # fmt: skip
    try:
        wait_ready(port, proc)
        warm: dict[str, np.ndarray] = {}
        at_warm = threading.Timer(WARMUP_S, lambda: warm.update(stage_counts(port)))
        at_warm.start()
        created = produce_steadily(bootstrap, topic, images, rate)
        lat = read_latencies(bootstrap, [alerts, scores], created)
        at_warm.join()
        after = stage_counts(port)
        measured = {s: after[s] - warm.get(s, 0) for s in STAGES if s in after}
        stages = {s: (bucket_quantile(c, 0.5), bucket_quantile(c, 0.99)) for s, c in measured.items()}
        return LatencyRun(lat[lat[:, 0] >= warmup, 1], stages)
    finally:
        proc.terminate()
        proc.wait(60)


def produce_steadily(bootstrap: str, topic: str, images: list[np.ndarray], rate: float) -> dict[str, int]:
    """Send one record every 1/rate s; returns each record id's create time (ms)."""
    ids = [f"lat/{i}" for i in range(len(images))]
    values = [image_message(image, id=rid) for rid, image in zip(ids, images, strict=True)]
    return dict(zip(ids, produce_at_rate(bootstrap, topic, values, rate), strict=True))


def read_latencies(bootstrap: str, outputs: list[str], created: dict[str, int]) -> np.ndarray:
    """(record number, ms) per output read back."""
    reader = consumer(bootstrap)
    reader.assign([TopicPartition(t, 0) for t in outputs])
    reader.seek_to_beginning()
    lat: list[tuple[int, int]] = []
    quiet_since, deadline = time.monotonic(), time.monotonic() + 60
    while len(lat) < len(created) and time.monotonic() - quiet_since < 5 and time.monotonic() < deadline:
        for batch in reader.poll(timeout_ms=500).values():
            quiet_since = time.monotonic()
            for m in batch:
                rid = json.loads(m.value)["record_id"]
                lat.append((int(rid.partition("/")[2]), m.timestamp - created[rid]))
    reader.close()
    return np.array(lat, dtype=float).reshape(-1, 2)


def percentiles(lat: np.ndarray) -> str:
    p50, p90, p99, p999 = np.percentile(lat, [50, 90, 99, 99.9])
    shares = f"p50 {p50:.0f} ms, p90 {p90:.0f}, p99 {p99:.0f}, p99.9 {p999:.0f}, max {lat.max():.0f}"
    return f"{shares} ({len(lat):,} outputs)"


_STAGE_BUCKET = re.compile(r'^anomaly_worker_stage_seconds_bucket\{(?P<labels>[^}]*)\} (?P<count>\S+)$', re.M)


def stage_counts(port: int) -> dict[str, np.ndarray]:
    """Per stage, the cumulative counts of the worker's stage histogram (all models together), in the
    order of its buckets (worker.metrics.STAGE_BUCKETS, then +Inf)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    counts: dict[str, dict[float, float]] = {}
    for m in _STAGE_BUCKET.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        per_bound = counts.setdefault(labels["stage"], {})
        bound = float(labels["le"])
        per_bound[bound] = per_bound.get(bound, 0.0) + float(m["count"])
    return {stage: np.array([c for _, c in sorted(by.items())]) for stage, by in counts.items()}


def bucket_quantile(cumulative: np.ndarray, q: float) -> float:
    """The q-quantile (ms) of a histogram with STAGE_BUCKETS, linear within the bucket it falls in."""
    bounds = np.array([*STAGE_BUCKETS, np.inf])
    total = cumulative[-1]
    if total <= 0:
        return float("nan")
    i = int(np.searchsorted(cumulative, q * total))
    if i >= len(STAGE_BUCKETS):  # in the +Inf bucket: say its lower bound, as histogram_quantile does
        return STAGE_BUCKETS[-1] * 1000
    lower, below = (bounds[i - 1], cumulative[i - 1]) if i else (0.0, 0.0)
    inside = cumulative[i] - below
    share = (q * total - below) / inside if inside else 1.0
    return float(lower + (bounds[i] - lower) * share) * 1000


def stage_line(stages: dict[str, tuple[float, float]]) -> str:
    """The stages' p50/p99 on one line, in the records' order."""
    return "; ".join(f"{s} {p50:.1f}/{p99:.1f}" for s, (p50, p99) in stages.items()) + " ms (p50/p99)"
