"""Real MNIST images and metric points through a real Kafka broker, decoded on the way out.

Produces a handful of wire-format records (and a few malformed messages) to an input
topic, consumes them back with a consumer group, decodes each with `schemas.decode`,
dead-letters the bad ones with their reason, and commits only after the dead letters
are acknowledged: the delivery rule the worker follows.
"""

from __future__ import annotations

import base64
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from demo import DEMO_SETTINGS
from schemas import (
    DeadLetter,
    ImageRecord,
    MetricPoint,
    Rejection,
    SourcePosition,
    decode,
    image_message,
    metric_message,
)
from schemas.settings import SettingsError, load_settings
from training.images.mnist import BUNDLED_DIR, load_split


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(cli_prog_name="python -m demo.roundtrip", **DEMO_SETTINGS)

    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers (host:port,...)")
    data_dir: Path = Field(BUNDLED_DIR, description="folder with the four MNIST IDX .gz files")
    images_per_digit: int = Field(2, ge=1, le=100, description="MNIST test images sent per digit (1, 4, 5)")
    metric_points: int = Field(4, ge=0, le=1000, description="metric points sent")
    topic_prefix: str = Field(
        "demo", description="topics are <prefix>.input-<run>, <prefix>.dead-letters-<run>"
    )


def malformed_messages() -> list[bytes]:
    pixels = base64.b64encode(bytes(100)).decode()
    return [
        b'{"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": "AAAA',  # truncated
        f'{{"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": "{pixels}"}}'.encode(),
        b'{"kind": "metric", "series": "api.latency_p99", "value": NaN}',
    ]


def build_messages(settings: DemoSettings) -> list[tuple[bytes | None, bytes, str]]:
    """(key, value, what it is) for every message the demo sends."""
    test = load_split("test", settings.data_dir)
    out: list[tuple[bytes | None, bytes, str]] = []
    for digit in (1, 4, 5):
        for idx in np.flatnonzero(test.labels == digit)[: settings.images_per_digit]:
            out.append(
                (
                    None,
                    image_message(test.images[idx], id=f"mnist-test/{idx}", source="mnist"),
                    f"MNIST test image #{idx}, a {digit}",
                )
            )
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    for i in range(settings.metric_points):
        key, value = metric_message(
            "api.latency_p99", 120.0 + 3.0 * np.sin(i), labels={"host": "a"}, ts=start + timedelta(minutes=i)
        )
        out.append((key, value, "metric point"))
    out.extend((None, raw, "malformed on purpose") for raw in malformed_messages())
    return out


def ascii_digit(pixels: np.ndarray) -> str:
    shades = " .:-=+*#%@"
    rows = pixels[::2, ::1]  # terminal cells are about twice as tall as wide
    return "\n".join("    " + "".join(shades[min(9, int(v * 10))] for v in row) for row in rows)


def run(settings: DemoSettings) -> int:
    run_id = uuid.uuid4().hex[:6]
    input_topic = f"{settings.topic_prefix}.input-{run_id}"
    dead_topic = f"{settings.topic_prefix}.dead-letters-{run_id}"
    servers = settings.bootstrap_servers.split(",")

    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="demo")
    admin.create_topics([NewTopic(input_topic, 1, 1), NewTopic(dead_topic, 1, 1)])
    admin.close()
    print(f"Kafka at {settings.bootstrap_servers}: topics {input_topic}, {dead_topic}\n")

    messages = build_messages(settings)
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    for f in [producer.send(input_topic, key=k, value=v) for k, v, _ in messages]:
        f.get(timeout=30)
    print(f"produced {len(messages)} messages to {input_topic} (acks=all)\n")

    consumer = KafkaConsumer(
        input_topic,
        bootstrap_servers=servers,
        group_id=f"demo-{run_id}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received = []
    deadline = time.monotonic() + 30
    while len(received) < len(messages) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            received.extend(batch)

    dead_futures = []
    shown_digit = False
    for msg, (_, _, what) in zip(received, messages, strict=False):
        result = decode(msg.value)
        where = f"[{msg.topic}:{msg.partition}:{msg.offset}]"
        if isinstance(result, ImageRecord):
            print(
                f"{where} image  id={result.id} shape={result.shape} dtype={result.dtype} "
                f"mean={result.pixels.mean():.3f}  ({what})"
            )
            if not shown_digit:
                print(ascii_digit(result.pixels))
                shown_digit = True
        elif isinstance(result, MetricPoint):
            print(f"{where} metric {result.series_key} ts={result.ts:%H:%M} value={result.value:.2f}")
        else:
            assert isinstance(result, Rejection)
            print(f"{where} REJECTED {result.reason.value}: {result.error}  ({what})")
            letter = DeadLetter(
                reason=result.reason,
                error=result.error,
                original=base64.b64encode(msg.value).decode(),
                original_size=len(msg.value),
                original_key=base64.b64encode(msg.key).decode() if msg.key else None,
                source=SourcePosition(topic=msg.topic, partition=msg.partition, offset=msg.offset),
                dead_lettered_at=datetime.now(UTC),
            )
            dead_futures.append(
                producer.send(dead_topic, key=msg.key, value=letter.model_dump_json().encode())
            )
    # The delivery rule: commit the input only once every dead letter is acknowledged.
    producer.flush()
    for f in dead_futures:
        f.get(timeout=30)
    consumer.commit()
    consumer.close()
    producer.close()

    print(
        f"\ncommitted {len(received)} input offsets after {len(dead_futures)} dead letters were acknowledged"
    )
    print(f"\nreading {dead_topic} back:")
    dlq = KafkaConsumer(
        dead_topic,
        bootstrap_servers=servers,
        group_id=f"demo-dlq-{run_id}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    letters = []
    deadline = time.monotonic() + 20
    while len(letters) < len(dead_futures) and time.monotonic() < deadline:
        for batch in dlq.poll(timeout_ms=500).values():
            letters.extend(DeadLetter.model_validate_json(m.value) for m in batch)
    dlq.close()
    for letter in letters:
        print(
            f"  {letter.reason.value:<15} from {letter.source.topic}:{letter.source.partition}:"
            f"{letter.source.offset}  {len(base64.b64decode(letter.original))} original bytes kept"
        )

    good = len(received) - len(dead_futures)
    print(
        f"\nsummary: {len(messages)} sent, {len(received)} received, {good} decoded, "
        f"{len(letters)} dead-lettered"
    )
    ok = len(received) == len(messages) and len(letters) == len(dead_futures) == len(malformed_messages())
    if not ok:
        print("demo: some messages did not come back; is the broker healthy?", file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(DemoSettings, argv)
    except SettingsError as exc:
        print(f"demo: {exc.message}", file=sys.stderr)
        return 2
    try:
        return run(settings)
    except NoBrokersAvailable:
        print(
            f"demo: no Kafka broker answers at {settings.bootstrap_servers}; start one with "
            "'make kafka-up' or set --bootstrap-servers / DEMO_BOOTSTRAP_SERVERS",
            file=sys.stderr,
        )
        return 1
    except KafkaError as exc:
        print(f"demo: Kafka error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
