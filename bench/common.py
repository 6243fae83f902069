"""Pieces both benchmarks use: topics, a worker process (tooling/process.py), its counters, append times."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from kafka import TopicPartition

from tooling.kafka import consumer
from tooling.process import start_worker_process
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[1]


def start_worker(
    bootstrap: str, repo: Path, topic: str, alerts: str, port: int, **extra: object
) -> subprocess.Popen:
    """The worker as its own process, reading `topic`; `extra`: more WorkerSettings fields."""
    settings = WorkerSettings(
        bootstrap_servers=bootstrap,
        input_topics=topic,
        alerts_topic=alerts,
        dead_letter_topic=f"{alerts}-dead",
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        model_repository=repo,
        metrics_port=port,
        log_level="WARNING",
        **extra,
    )
    return start_worker_process(settings)


def append_times(bootstrap: str, topic: str) -> list[int]:
    """Broker append times (ms) of every message of a one-partition topic, in order.

    Read up to the end offset, not up to as many messages: a topic written in transactions
    (exactly-once) also holds a commit marker per transaction, which takes an offset and is no message."""
    reader = consumer(bootstrap)
    tp = TopicPartition(topic, 0)
    reader.assign([tp])
    end = reader.end_offsets([tp])[tp]
    reader.seek_to_beginning()
    stamps: list[int] = []
    last_new = time.monotonic()
    while len(stamps) < end and reader.position(tp) < end:
        for batch in reader.poll(timeout_ms=500).values():
            stamps.extend(m.timestamp for m in batch)
            last_new = time.monotonic()
        if time.monotonic() - last_new > 10:  # a trailing marker the client does not step over
            break
    reader.close()
    return stamps


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time so far of these processes (Linux /proc; 0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
