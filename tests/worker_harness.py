"""Helpers for worker tests: a worker in a thread of the test's process; the Kafka plumbing and the
worker as a process come from tooling/ (kafka.py, process.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from tooling.kafka import committed, end_offsets, produce, read_json, read_topic, wait_for
from tooling.process import start_piped as start_worker_process
from tooling.process import worker_settings
from worker.app import Worker
from worker.build import build_worker
from worker.health import serve
from worker.settings import WorkerSettings

__all__ = ["WorkerThread", "committed", "end_offsets", "produce", "read_json", "read_topic",
           "start_worker_process", "wait_for", "worker_settings"]  # fmt: skip


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
