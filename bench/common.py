"""Pieces both benchmarks use: topics, a worker process, waiting for it to be ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    admin.close()
    return name


def start_worker(
    bootstrap: str, repo: Path, topic: str, alerts: str, port: int, **extra: str
) -> subprocess.Popen:
    env = dict(
        os.environ,
        WORKER_BOOTSTRAP_SERVERS=bootstrap,
        WORKER_INPUT_TOPICS=topic,
        WORKER_ALERTS_TOPIC=alerts,
        WORKER_DEAD_LETTER_TOPIC=f"{alerts}-dead",
        WORKER_GROUP_ID=f"bench-{uuid.uuid4().hex[:8]}",
        WORKER_MODEL_REPOSITORY=str(repo),
        WORKER_METRICS_PORT=str(port),
        WORKER_LOG_LEVEL="WARNING",
    )
    env.update({f"WORKER_{k.upper()}": v for k, v in extra.items()})
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env)


def wait_ready(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the worker was not ready within {timeout_s} s")


def append_times(bootstrap: str, topic: str) -> list[int]:
    """Broker append times (ms) of every message of a one-partition topic, in order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    consumer.seek_to_beginning()
    stamps: list[int] = []
    while len(stamps) < end:
        for batch in consumer.poll(timeout_ms=500).values():
            stamps.extend(m.timestamp for m in batch)
    consumer.close()
    return stamps


def metric_total(port: int, name: str, label: str = "") -> float:
    """Sum of a worker counter over its label sets (those containing `label`); 0 if not reachable."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )
