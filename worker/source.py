"""The source side: Kafka clients tuned for throughput, and the topic checks done at start."""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable

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
