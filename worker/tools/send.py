"""`python -m worker send FILE`: put a file's records on a topic, so your own data reaches the worker
without a producer of your own.

- A CSV file (or a folder of them) in the format training reads (docs/kpi.md: series, timestamp and
  value columns, with their aliases): each row becomes a metric point, keyed by its series (so a
  series stays on one partition), sent in time order across the series.
- A .jsonl file: one record per line (an image record, a metric point: docs/wire-format.md), sent as
  it is; a metric point is keyed by its series key.

`--rate` paces the records (per second; 0, the default: as fast as the broker takes them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg

from schemas import metric_message
from schemas.records import series_key
from worker.tools.common import connection, run_tool, tool_config


class SendSettings(BaseSettings):
    """Send a CSV of KPI series (as training reads them) or a .jsonl file of records to a topic."""

    model_config = tool_config("send", "SEND")

    file: CliPositionalArg[Path] = Field(
        description="a .csv file or folder (series,timestamp,value), or a .jsonl file of records"
    )
    topic: str = Field("metrics", description="the input topic to send to")
    rate: float = Field(0, ge=0, description="records per second; 0 = as fast as the broker takes them")
    model: str | None = Field(None, description="CSV points: the model they name (default: the worker's)")
    bootstrap_servers: str | None = Field(
        None, description="Kafka to send to; default: WORKER_BOOTSTRAP_SERVERS (localhost:9092)"
    )


def records(s: SendSettings) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, value) of every record the file holds, in the order they are sent."""
    if s.file.suffix.lower() == ".jsonl":
        with s.file.open("rb") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield _key_of(line), line
        return
    from training.kpi.load import load_csv  # numpy only: no torch

    data = load_csv(s.file)
    points = sorted((float(t), key, float(v)) for key, raw in data.series.items()
                    for t, v in zip(raw.timestamps, raw.values, strict=True))  # fmt: skip
    for t, key, value in points:
        yield metric_message(key, value, ts=datetime.fromtimestamp(t, UTC), model=s.model)


def _key_of(line: bytes) -> bytes | None:
    try:
        record = json.loads(line)
        if record.get("kind") == "metric":
            return series_key(record["series"], record.get("labels") or {}).encode()
    except (ValueError, AttributeError, KeyError, TypeError):
        pass  # sent as it is: the worker dead-letters what it cannot read, with the reason
    return None


def send(s: SendSettings) -> int:
    producer = KafkaProducer(**connection(s.bootstrap_servers), acks="all", linger_ms=5)
    started, sent = time.monotonic(), 0
    try:
        for key, value in records(s):
            if s.rate:
                time.sleep(max(0.0, started + sent / s.rate - time.monotonic()))
            producer.send(s.topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def main(argv: list[str]) -> int:
    def body(s: SendSettings) -> None:
        started = time.monotonic()
        sent = send(s)
        print(f"sent {sent:,} records from {s.file} to {s.topic} in {time.monotonic() - started:.1f} s")

    # CsvError is a ValueError: it names the file and the row
    return run_tool("send", SendSettings, argv, body, (KafkaError, OSError, ValueError))
