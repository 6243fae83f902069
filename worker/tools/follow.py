"""`python -m worker follow`: print what the worker writes, one readable line per message.

  ALERT  cam-7/000123         mnist-vae:3   score  231.50 >= 120.00  severity 0.93
  ALERT  api.latency{host="a"} 2026-11-22T10:05  value 123.4  score 5.10 >= 4.00  by level  (kpi-vae:2)
  score  cam-7/000124         mnist-vae:3   score   80.20 <  120.00
  DEAD   schema          field `value`: ... (images:0:1234)

`--json` prints each message's JSON as it is instead. It reads the alerts and dead-letter topics (and
the scores topic if you name it) from their ends, or from their beginnings with --from-beginning, as
a consumer of no group (it commits nothing and moves no worker's offsets).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Literal

from kafka import KafkaConsumer, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings

from worker.tools.common import connection, run_tool, tool_config


class FollowSettings(BaseSettings):
    """Print the worker's alerts and dead letters (and score messages) as they are written."""

    model_config = tool_config("follow", "FOLLOW")

    topics: str = Field("alerts,dead-letters", description="topics to print, comma-separated (add the "
                        "worker's --scores-topic to see every score)")  # fmt: skip
    from_beginning: bool = Field(False, description="start at each topic's beginning, not its end")
    json_lines: bool = Field(False, alias="json", description="print each message's JSON as it is")
    isolation: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed",
        description="read_committed: an exactly-once worker's outputs once their transaction commits, "
        "never those of an aborted one; read_uncommitted: every message written",
    )
    idle_exit_s: float = Field(0, ge=0, description="stop after this long without a message; 0 = follow on")
    bootstrap_servers: str | None = Field(
        None, description="Kafka to read from; default: WORKER_BOOTSTRAP_SERVERS (localhost:9092)"
    )


def describe(topic: str, out: dict) -> str:
    """One readable line for an output of the worker (an alert, a score message or a dead letter)."""
    if "reason" in out and "original" in out:  # a dead letter
        src = out.get("source") or {}
        where = f"{src.get('topic')}:{src.get('partition')}:{src.get('offset')}"
        return f"DEAD   {out['reason']:<15} {out.get('error', '')[:100]}  ({where})"
    label = "ALERT" if out.get("score", 0) >= out.get("threshold", float("inf")) else "score"
    model = f"{out.get('model')}:{out.get('model_version')}"
    compare = ">=" if label == "ALERT" else "< "
    figures = f"score {out['score']:8.2f} {compare} {out['threshold']:.2f}"
    if out.get("series_key"):
        when = (out.get("ts") or "")[:16]
        by = f"  by {out['detector']}" if out.get("detector") else ""
        return (f"{label:<6} {out['series_key']} {when}  value {out.get('value')}  {figures}{by}  "
                f"({model})")  # fmt: skip
    severity = f"  severity {out['severity']:.2f}" if out.get("severity") is not None else ""
    return f"{label:<6} {out.get('record_id', '?'):<20} {model:<13} {figures}{severity}"


def follow(s: FollowSettings, out=sys.stdout) -> int:
    """Print until interrupted (or idle for --idle-exit-s); the number of messages printed."""
    topics = [t.strip() for t in s.topics.split(",") if t.strip()]
    consumer = KafkaConsumer(**connection(s.bootstrap_servers), group_id=None, enable_auto_commit=False,
                             isolation_level=s.isolation, receive_message_max_bytes=8 << 20)  # fmt: skip
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        missing = [t for t in topics if not any(tp.topic == t for tp in parts)]
        if missing:
            print(f"worker follow: no topic {', '.join(missing)} (yet); following the others",
                  file=sys.stderr)  # fmt: skip
        consumer.assign(parts)
        (consumer.seek_to_beginning if s.from_beginning else consumer.seek_to_end)()
        printed, last = 0, time.monotonic()
        while not s.idle_exit_s or time.monotonic() - last < s.idle_exit_s:
            for records in consumer.poll(timeout_ms=500).values():
                for m in records:
                    last = time.monotonic()
                    text = m.value.decode("utf-8", "replace") if m.value is not None else "null"
                    print(text if s.json_lines else _line(m.topic, text), file=out, flush=True)
                    printed += 1
        return printed
    finally:
        consumer.close()


def _line(topic: str, text: str) -> str:
    try:
        return describe(topic, json.loads(text))
    except (ValueError, KeyError, TypeError):  # not an output of the worker: as it is
        return f"{topic}: {text[:200]}"


def main(argv: list[str]) -> int:
    return run_tool("follow", FollowSettings, argv, follow)
