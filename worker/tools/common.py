"""What the tools share: their Kafka connection, from the worker's own settings."""

from __future__ import annotations

from worker.settings import WorkerSettings


def connection(bootstrap_servers: str | None) -> dict[str, object]:
    """kafka-python options for the cluster the worker would reach: the WORKER_* variables (security,
    SASL, TLS), with --bootstrap-servers over WORKER_BOOTSTRAP_SERVERS when given."""
    s = WorkerSettings(**({"bootstrap_servers": bootstrap_servers} if bootstrap_servers else {}))
    return s.kafka_common()
