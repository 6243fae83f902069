"""Helpers for worker tests: produce, read topics back, read commits, run a worker in a thread or process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from worker.app import Worker, new_metrics
from worker.health import Health, serve
from worker.registry import ModelRegistry
from worker.settings import WorkerSettings
from worker.transport import build_clients, check_topics

REPO = Path(__file__).resolve().parents[1]


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    keys = keys or [None] * len(values)
    futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, values, strict=True)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0,
               quiet_s: float = 2.0) -> list:  # fmt: skip
    """Every message of a topic: until `expect` arrived, or nothing new came for `quiet_s`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
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
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return {tp.partition: off for tp, off in ends.items()}


def worker_settings(
    bootstrap: str, repository: Path, topics: dict[str, str], **overrides: object
) -> WorkerSettings:
    return WorkerSettings(
        bootstrap_servers=bootstrap,
        input_topics=topics["input"],
        alerts_topic=topics["alerts"],
        dead_letter_topic=topics["dead"],
        scores_topic=topics.get("scores"),
        group_id=topics["group"],
        model_repository=repository,
        metrics_port=0,
        **overrides,
    )


@dataclass
class WorkerThread:
    """A worker running in this process, with its own metrics registry and HTTP server."""

    settings: WorkerSettings
    error: BaseException | None = None
    thread: threading.Thread | None = None
    worker: Worker | None = None
    port: int = 0
    registry: object = field(default=None)

    def __enter__(self) -> WorkerThread:
        metrics, self.registry = new_metrics()
        health = Health()
        server = serve("127.0.0.1", 0, self.registry, health)
        self.server, self.port = server, server.server_port
        models = ModelRegistry.load(self.settings.model_repository, "cpu", None, None)
        health.models_loaded = True
        consumer, producer = build_clients(self.settings)
        check_topics(self.settings, consumer)
        self.worker = Worker(self.settings, models, consumer, producer, metrics, health)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self, timeout_s: float = 60) -> None:
        self.worker.stop()
        self.thread.join(timeout_s)
        self.server.shutdown()
        if self.thread.is_alive():
            raise AssertionError("the worker did not stop")

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()


def start_worker_process(
    settings: WorkerSettings, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`python -m worker` configured through WORKER_* variables, as a container would run it."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"WORKER_{name.upper()}"] = str(value)
    env["WORKER_METRICS_PORT"] = "0"
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
