"""Helpers for worker tests: produce, read topics back, read commits, run a worker in a thread or process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from worker.app import Worker
from worker.build import build_worker
from worker.health import serve
from worker.launch import start_worker_process as launch
from worker.settings import WorkerSettings


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    keys = keys or [None] * len(values)
    futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, values, strict=True)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0,
               quiet_s: float = 2.0, isolation: str = "read_uncommitted") -> list:  # fmt: skip
    """Every message of a topic: until `expect` arrived, or nothing new came for `quiet_s`."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        receive_message_max_bytes=8 << 20,
        isolation_level=isolation,
    )  # outputs may be near 1 MiB
    parts = consumer.partitions_for_topic(topic) or set()
    deadline = time.monotonic() + 10
    while not parts and time.monotonic() < deadline:
        time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in parts])
    consumer.seek_to_beginning()
    out: list = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        got = consumer.poll(timeout_ms=200)
        for batch in got.values():
            out.extend(batch)
            last_new = time.monotonic()
        if expect is not None and len(out) >= expect:
            break
        if expect is None and time.monotonic() - last_new > quiet_s:
            break
    consumer.close()
    return out


def read_json(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0) -> list[dict]:
    return [json.loads(m.value) for m in read_topic(bootstrap, topic, expect, timeout_s)]


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (partitions never committed are left out)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    out = {}
    for p in consumer.partitions_for_topic(topic) or ():
        offset = consumer.committed(TopicPartition(topic, p))
        if offset is not None:
            out[p] = offset
    consumer.close(autocommit=False)
    return out


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        receive_message_max_bytes=8 << 20,
    )  # outputs may be near 1 MiB
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return {tp.partition: off for tp, off in ends.items()}


def wait_for(condition: Callable[[], object], timeout_s: float = 120, every_s: float = 0.5) -> bool:
    """Whether `condition()` came true within `timeout_s` (generous: CI machines are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False


def worker_settings(
    bootstrap: str, repository: Path, topics: dict[str, str], **overrides: object
) -> WorkerSettings:
    """Settings for a test's worker: its topics and group, no metrics server of its own, the CPU."""
    return WorkerSettings(**{
        "bootstrap_servers": bootstrap,
        "input_topics": topics["input"],
        "alerts_topic": topics["alerts"],
        "dead_letter_topic": topics["dead"],
        "scores_topic": topics.get("scores"),
        "group_id": topics["group"],
        "model_repository": repository,
        "metrics_port": 0,
        "device": "cpu",
        # A test's group: a member killed by a test leaves within 10 s, not the default 30.
        "session_timeout_ms": 10_000,
        **overrides,
    })  # fmt: skip


@dataclass
class WorkerThread:
    """A worker built as the CLI builds one (worker/build.py), running in a thread of this process,
    with its own metrics registry and an HTTP server on a free port."""

    settings: WorkerSettings
    error: BaseException | None = None
    thread: threading.Thread | None = None
    worker: Worker | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()

    def __enter__(self) -> WorkerThread:
        self.worker = build_worker(self.settings, self.registry)
        self.server = serve("127.0.0.1", 0, self.registry, self.worker.health)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def sample(self, name: str, **labels: str) -> float:
        """A value of the worker's /metrics (0 until the series exists)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def stop(self, timeout_s: float = 60) -> None:
        self.worker.stop()
        self.thread.join(timeout_s)
        self.server.shutdown()
        if self.thread.is_alive():
            raise AssertionError("the worker did not stop")

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()


def start_worker_process(settings: WorkerSettings) -> subprocess.Popen:
    """`python -m worker` configured through WORKER_* variables, as a container would run it; its
    output (stdout and stderr together) readable as text."""
    settings = settings.model_copy(update={"metrics_port": 0})
    return launch(settings, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
