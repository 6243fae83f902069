"""The source stage: the Kafka clients the worker reads and writes with, the topic checks at start, and
what it reports of its reading (records consumed; the lag is worker/lag.py's).

The client is chosen by --transport; its module under worker/kafka/ is imported only then, so a
missing optional package (confluent-kafka) fails only the transport that needs it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from worker.health import Health
from worker.kafka.protocol import BrokerUnreachable, Consumed, KafkaConfigError, Sink, Source, StartupError
from worker.kafka.transports import TRANSPORTS
from worker.lag import Offsets
from worker.metrics import Metrics
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def build_clients(s: WorkerSettings) -> tuple[Source, Sink]:
    """The consumer and producer of the transport `s` names."""
    return TRANSPORTS[s.transport].load().build(s)


WAIT_REPORT_S = 30.0  # while waiting for Kafka at start, say so this often
WAIT_MAX_DELAY_S = 10.0


def connect(s: WorkerSettings, health: Health) -> tuple[Source, Sink]:
    """build_clients, waiting out a Kafka that does not answer yet (it starts after us, or is down):
    retries with backoff up to --kafka-wait-s (0: for as long as it takes), not ready meanwhile.
    Misconfiguration (KafkaConfigError) is not waited out: a restart would not fix it."""
    started, reported = time.monotonic(), None
    delay = 1.0
    while True:
        try:
            clients = build_clients(s)
        except BrokerUnreachable as exc:
            waited = time.monotonic() - started
            if s.kafka_wait_s and waited + delay > s.kafka_wait_s:
                raise
            health.kafka_problem = f"waiting for Kafka at {s.bootstrap_servers}"
            if reported is None or time.monotonic() - reported >= WAIT_REPORT_S:
                reported = time.monotonic()
                limit = f"for up to {s.kafka_wait_s:.0f} s" if s.kafka_wait_s else "until it answers"
                log.warning("%s; waited %.0f s, retrying %s (--kafka-wait-s)", exc, waited, limit)
            time.sleep(delay)
            delay = min(delay * 2, WAIT_MAX_DELAY_S)
            continue
        if health.kafka_problem:
            log.info("Kafka at %s answers after %.0f s", s.bootstrap_servers, time.monotonic() - started)
        health.kafka_problem = None
        return clients


def offsets_client(s: WorkerSettings, timeout_s: float) -> Offsets:
    """A client of the transport `s` names that asks the broker for end offsets and commits (the lag
    probe's, worker/lag.py; each call waits at most `timeout_s`)."""
    transport = TRANSPORTS[s.transport]
    return getattr(transport.load(), transport.offsets)(s, timeout_s)


def check_topics(s: WorkerSettings, source: Source) -> None:
    """Input topics must exist; missing output topics are created (or the error says how)."""
    existing = source.topics()
    missing_inputs = [t for t in s.topics if t not in existing]
    if missing_inputs:
        raise StartupError(
            f"input topic(s) {', '.join(missing_inputs)} do not exist on {s.bootstrap_servers}; create them "
            "or fix --input-topics / WORKER_INPUT_TOPICS"
        )
    outputs = [t for t in s.output_topics if t not in existing]
    if not outputs:
        return
    try:
        source.create_topics(outputs)
        log.info("created output topic(s) %s", ", ".join(outputs))
    except Exception as exc:  # each client raises its own error types
        if "TOPIC_ALREADY_EXISTS" in str(exc).upper() or "TopicAlreadyExists" in type(exc).__name__:
            return
        raise StartupError(
            f"output topic(s) {', '.join(outputs)} do not exist and could not be created ({exc}); "
            "create them or point --alerts-topic / --dead-letter-topic / --scores-topic elsewhere"
        ) from None


RECORD_OVERHEAD = 1024  # a record batch's header and the record's own framing, with room to spare


def max_output_bytes(s: WorkerSettings, source: Source, sink: Sink) -> int:
    """The largest output (key + value) that both the producer and every output topic accept."""
    try:
        configs = source.topic_configs(s.output_topics)
    except Exception as exc:  # e.g. not allowed to describe configs: the defaults still hold
        log.warning("could not read the output topics' max.message.bytes (%s); assuming Kafka's default", exc)
        configs = {}
    limits = [int(v) for c in configs.values() if (v := c.get("max.message.bytes", "")).isdigit()]
    smallest = min([sink.max_record_bytes, *limits])
    return max(4096, smallest - RECORD_OVERHEAD)


def check_unpacking(s: WorkerSettings, source: Source) -> None:
    """--transport confluent: refuse to start (or warn, --unbounded-unpacking warn) unless every
    input topic stores its batches uncompressed. librdkafka unpacks a gzip, lz4 or snappy batch whole
    before the worker sees it, so 64 KiB of gzip takes 64 MiB; kafka-python's batches are unpacked by
    worker/kafka/unpack.py, within --max-unpacked-bytes."""
    if TRANSPORTS[s.transport].bounded_unpacking:
        return
    try:
        configs = source.topic_configs(s.topics)
    except Exception as exc:  # not allowed to describe configs: cannot tell, so say so
        configs, why = {}, f"could not read their compression.type ({exc})"
    else:
        why = "compression.type is not 'uncompressed'"
    exposed = [t for t in s.topics if configs.get(t, {}).get("compression.type") != "uncompressed"]
    if not exposed:
        return
    message = (
        f"input topic(s) {', '.join(exposed)}: {why}, and librdkafka (--transport confluent) unpacks "
        "gzip, lz4 and snappy batches whole with no limit, so one small compressed batch can take "
        "gigabytes of memory. Set compression.type=uncompressed on the topic (the broker then refuses "
        "batches that unpack past max.message.bytes), or use --transport kafka-python, which unpacks "
        "within --max-unpacked-bytes"
    )
    if s.unbounded_unpacking == "refuse":
        raise KafkaConfigError(
            f"{message}. To start anyway, accepting that the worker's memory depends on what producers "
            "send: --unbounded-unpacking / WORKER_UNBOUNDED_UNPACKING warn"
        )
    log.warning("%s (started anyway: --unbounded-unpacking warn)", message)


def count_consumed(metrics: Metrics, topics: list[str], polled: list[Consumed]) -> None:
    if len(topics) == 1:  # the common case needs no per-message look at the topic
        metrics.consumed.labels(topic=topics[0]).inc(len(polled))
        return
    for topic, n in Counter(m.topic for m in polled).items():
        metrics.consumed.labels(topic=topic).inc(n)
