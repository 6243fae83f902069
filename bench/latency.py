"""(e) produce -> output latency on a realistic stream, at a steady rate.

The stream: a 3-partition input topic, MNIST 1s and 4s with 5 % 5s (anomalies) among them, and a
scores topic, so every record has an output (an alert or a score message). A record's latency runs
from its create time (stamped by the producer) to its output's broker append time (the output
topics use LogAppendTime), so nothing on the reading side counts. The first WARMUP_S of each run
are sent but not counted: they measure start-up (the broker's JIT, the worker's first batches;
the first run after the broker starts had a p99 of 142-169 ms where the next ones had 77-92),
not the steady stream the figure is about.

`python -m bench.run --only latency` runs this stage alone, --repeats times per transport.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
from kafka import TopicPartition

from bench.common import start_worker
from schemas import image_message
from tooling.broker import free_port_block
from tooling.kafka import STORED_PLAIN, consumer, create_topic, produce_at_rate
from tooling.process import wait_ready
from training.images.mnist import load_split

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


def latency(bootstrap: str, repo: Path, rate: float, seconds: float, model: str, transport: str,
            partitions: int = 3, anomaly_share: float = 0.05) -> np.ndarray:  # fmt: skip
    """ms from each record's create time to its output's append time; one value per output read back."""
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
        created = produce_steadily(bootstrap, topic, images, rate)
        lat = read_latencies(bootstrap, [alerts, scores], created)
        return lat[lat[:, 0] >= warmup, 1]
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
