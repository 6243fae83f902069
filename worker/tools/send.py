"""`python -m worker send FILE`: put a file's records on a topic, so your own data reaches the worker
without a producer of your own.

- A CSV file (or a folder of them) in the format training reads (docs/kpi.md: series, timestamp and
  value columns, with their aliases): each row becomes a metric point, keyed by its series (so a
  series stays on one partition), sent in time order across the series.
- A .jsonl file: one record per line (an image record, a metric point: docs/wire-format.md), sent as
  it is; a metric point is keyed by its series key.

`--rate` paces the records (per second; 0, the default: as fast as the broker takes them).

The topic must exist: a broker that creates topics on first use would otherwise take a typo, with its
own defaults, where no worker reads. `--create-topic` creates it as `python -m worker topics create`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg

from schemas import metric_message
from schemas.records import series_key
from worker.tools.common import Refused, connection, listed, run_tool, tool_config, user_topics
from worker.tools.topics import TopicSettings, create


def print_warning(line: str) -> None:
    print(f"worker send: {line}", file=sys.stderr)


class SendSettings(BaseSettings):
    """Send a CSV of KPI series (as training reads them) or a .jsonl file of records to a topic."""

    model_config = tool_config("send", "SEND")

    file: CliPositionalArg[Path] = Field(
        description="a .csv file or folder (series,timestamp,value), or a .jsonl file of records"
    )
    topic: str = Field("metrics", description="the input topic to send to")
    rate: float = Field(0, ge=0, description="records per second; 0 = as fast as the broker takes them")
    model: str | None = Field(None, description="CSV points: the model they name (default: the worker's)")
    create_topic: bool = Field(False, description="create --topic as `python -m worker topics create` does "
                               "if it does not exist; without it, such a topic is refused")  # fmt: skip
    bootstrap_servers: str | None = Field(
        None, description="Kafka to send to; default: WORKER_BOOTSTRAP_SERVERS (localhost:9092)"
    )


def records(s: SendSettings, warn=print_warning) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) of every record the file holds, in the order they are sent. The file is opened (a
    .jsonl) or read (a CSV) here, before anything is sent, so a file that cannot be read says so first."""
    if s.file.suffix.lower() == ".jsonl":
        return _lines(s.file.open("rb"))
    from training.kpi.load import load_csv  # numpy only: no torch

    data = load_csv(s.file)
    for path, names in data.unused_columns.items():
        warn(unread_columns(path, names))
    points = sorted((float(t), key, float(v)) for key, raw in data.series.items()
                    for t, v in zip(raw.timestamps, raw.values, strict=True))  # fmt: skip
    return (metric_message(key, v, ts=datetime.fromtimestamp(t, UTC), model=s.model) for t, key, v in points)


def unread_columns(path: str, names: list[str]) -> str:
    """The warning for CSV columns send does not read. A CSV has no column for a point's labels
    (docs/kpi.md#input: the series column is its whole name), so a `host` column would be dropped
    unseen: say so, and where labels do go."""
    return (f"warning: {path}: column(s) {', '.join(names)} not read: send reads series, timestamp and "
            "value (their aliases: docs/kpi.md#input); to send labels (host=\"a\"), send a .jsonl file of "
            "metric points with \"labels\" (docs/wire-format.md#input-metric-point)")  # fmt: skip


def _lines(fh: BinaryIO) -> Iterator[tuple[bytes | None, bytes]]:
    with fh:
        for line in fh:
            line = line.strip()
            if line:
                yield _key_of(line), line


def _key_of(line: bytes) -> bytes | None:
    try:
        record = json.loads(line)
        if record.get("kind") == "metric":
            return series_key(record["series"], record.get("labels") or {}).encode()
    except (ValueError, AttributeError, KeyError, TypeError):
        pass  # sent as it is: the worker dead-letters what it cannot read, with the reason
    return None


def send(s: SendSettings) -> int:
    """Send the file's records to --topic (which must exist, unless --create-topic); the number sent."""
    todo = records(s)
    options = connection(s.bootstrap_servers)
    _topic_there(s, options)
    # Not created by sending to it either: a topic Kafka makes on the fly has the broker's defaults.
    producer = KafkaProducer(**options, acks="all", linger_ms=5, allow_auto_create_topics=False)
    started, sent = time.monotonic(), 0
    try:
        for key, value in todo:
            if s.rate:
                time.sleep(max(0.0, started + sent / s.rate - time.monotonic()))
            producer.send(s.topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def _topic_there(s: SendSettings, options: dict[str, object]) -> None:
    """Refuse a --topic that does not exist (a typo would otherwise be created by the broker, and the
    records sent where no worker reads), or create it as advised with --create-topic."""
    admin = KafkaAdminClient(**options, client_id="anomaly-worker-send")
    try:
        there = set(admin.list_topics())
    finally:
        admin.close()
    if s.topic in there:
        return
    if not s.create_topic:
        raise Refused(f"no topic {s.topic} on Kafka at {','.join(options['bootstrap_servers'])}; create it "
                      f"with `python -m worker topics create {s.topic}` (or pass --create-topic), or check "
                      f"--topic (topics there: {listed(user_topics(there))})")  # fmt: skip
    print("\n".join(create(TopicSettings(names=s.topic, bootstrap_servers=s.bootstrap_servers))))


def main(argv: list[str]) -> int:
    def body(s: SendSettings) -> None:
        started = time.monotonic()
        sent = send(s)
        print(f"sent {sent:,} records from {s.file} to {s.topic} in {time.monotonic() - started:.1f} s")

    # CsvError is a ValueError: it names the file and the row
    return run_tool("send", SendSettings, argv, body, (KafkaError, OSError, ValueError))
