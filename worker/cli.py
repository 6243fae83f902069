"""`python -m worker`: settings, models, Kafka clients, the metrics server, signals; then the loop.

Every failure a user can fix ends in one line that says what to do (exit 1, or 2 for bad
options); the traceback goes to the debug log.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable

from schemas.settings import SettingsError, load_settings
from worker import logs
from worker.app import Worker, new_metrics
from worker.device import DeviceError
from worker.health import Health, serve
from worker.publish import DeliveryError
from worker.registry import BundleError, ModelRegistry
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


class StartupError(RuntimeError):
    pass


def build_clients(s: WorkerSettings) -> tuple[KafkaConsumer, KafkaProducer]:
    common = s.kafka_common()
    try:
        consumer = KafkaConsumer(
            group_id=s.group_id,
            client_id=f"{s.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            max_poll_records=s.max_poll_records,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            receive_message_max_bytes=32 * 1024 * 1024,  # must exceed fetch_max_bytes plus headers
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            **common,
        )
        producer = KafkaProducer(
            client_id=f"{s.group_id}-producer",
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            retries=5,
            max_in_flight_requests_per_connection=5,
            **common,
        )
    except NoBrokersAvailable as exc:
        raise StartupError(
            f"cannot reach Kafka at {s.bootstrap_servers} ({exc}); check --bootstrap-servers / "
            "WORKER_BOOTSTRAP_SERVERS and that the broker is up ('make kafka-up' starts a local one)"
        ) from None
    return consumer, producer


def check_topics(s: WorkerSettings, consumer: KafkaConsumer) -> None:
    """Input topics must exist; missing output topics are created (or the error says how)."""
    existing = consumer.topics()
    missing_inputs = [t for t in s.topics if t not in existing]
    if missing_inputs:
        raise StartupError(
            f"input topic(s) {', '.join(missing_inputs)} do not exist on {s.bootstrap_servers}; create them "
            "or fix --input-topics / WORKER_INPUT_TOPICS"
        )
    outputs = [t for t in (s.alerts_topic, s.dead_letter_topic, s.scores_topic) if t and t not in existing]
    if not outputs:
        return
    try:
        admin = KafkaAdminClient(**s.kafka_common(), client_id=f"{s.group_id}-admin")
        admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=-1) for t in outputs])
        admin.close()
        log.info("created output topic(s) %s", ", ".join(outputs))
    except KafkaError as exc:
        if "TopicAlreadyExists" in type(exc).__name__:
            return
        raise StartupError(
            f"output topic(s) {', '.join(outputs)} do not exist and could not be created ({exc}); "
            "create them or point --alerts-topic / --dead-letter-topic / --scores-topic elsewhere"
        ) from None


def install_signals(worker: Worker) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if worker.health.stopping:
            log.warning("second %s: exiting now, without draining", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(s: WorkerSettings) -> int:
    metrics, registry = new_metrics()
    health = Health()
    if s.metrics_port:
        server = serve(s.metrics_host, s.metrics_port, registry, health)
        log.info(
            "metrics on http://%s:%d/metrics (also /healthz, /readyz)", s.metrics_host, server.server_port
        )
    models = ModelRegistry.load(s.model_repository, s.device, s.models, s.default_model, s.intra_op_threads)
    for m in models:
        log.info("loaded %s (threshold %.3f) on %s", m.key, m.manifest.threshold, ",".join(m.providers))
    health.models_loaded = True
    consumer, producer = build_clients(s)
    check_topics(s, consumer)
    worker = Worker(s, models, consumer, producer, metrics, health)
    install_signals(worker)
    log.info("consuming %s as group %s; alerts to %s", ",".join(s.topics), s.group_id, s.alerts_topic)
    worker.run()
    log.info("stopped cleanly: outputs flushed, offsets committed, group left")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        s = load_settings(WorkerSettings, argv)
    except SettingsError as exc:
        print(f"worker: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(s.log_level, s.log_json)
    try:
        return run(s)
    except (StartupError, BundleError, DeviceError) as exc:
        log.debug("start-up failed", exc_info=True)
        log.error("%s", exc)
        return 1
    except DeliveryError as exc:
        log.error("stopping without committing: %s; a restart re-reads from the last commit", exc)
        return 1
    except OSError as exc:  # e.g. the metrics port is taken
        log.debug("failed", exc_info=True)
        log.error("%s", exc)
        return 1
