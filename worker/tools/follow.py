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

from worker.tools.common import Refused, connection, listed, run_tool, tool_config, user_topics

# How often a topic not there yet is looked for (one metadata request).
LOOK_AGAIN_S = 5.0


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
    """Print until interrupted (or idle for --idle-exit-s); the number of messages printed. A topic
    not created yet is followed once it is; Refused when none of them is there."""
    topics = [t.strip() for t in s.topics.split(",") if t.strip()]
    consumer = KafkaConsumer(**connection(s.bootstrap_servers), group_id=None, enable_auto_commit=False,
                             isolation_level=s.isolation, receive_message_max_bytes=8 << 20,
                             allow_auto_create_topics=False)  # fmt: skip
    try:
        missing = _start(consumer, topics, s.from_beginning)
        printed, last, looked = 0, time.monotonic(), time.monotonic()
        while not s.idle_exit_s or time.monotonic() - last < s.idle_exit_s:
            if missing and time.monotonic() - looked >= LOOK_AGAIN_S:
                missing, looked = _add_created(consumer, missing), time.monotonic()
            for records in consumer.poll(timeout_ms=500).values():
                for m in records:
                    last = time.monotonic()
                    text = m.value.decode("utf-8", "replace") if m.value is not None else "null"
                    print(text if s.json_lines else _line(m.topic, text), file=out, flush=True)
                    printed += 1
        return printed
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of those topics the cluster has (none for a topic it does not have)."""
    there = consumer.topics()  # one metadata request, fresh: partitions_for_topic answers from it
    return [TopicPartition(t, p) for t in topics if t in there
            for p in sorted(consumer.partitions_for_topic(t))]  # fmt: skip


def _start(consumer: KafkaConsumer, topics: list[str], from_beginning: bool) -> list[str]:
    """Assign the partitions of the topics there are, at their ends (or beginnings); the topics that
    are not there yet. Refused if none is: a typo, or a worker that has not created its outputs yet."""
    parts = _partitions(consumer, topics)
    missing = [t for t in topics if not any(tp.topic == t for tp in parts)]
    if not parts:
        there = user_topics(consumer.topics())
        raise Refused(f"no topic {', '.join(missing)} on this cluster (its topics: {listed(there)}); check "
                      "--topics (the worker creates its output topics when it starts)")  # fmt: skip
    if missing:
        print(f"worker follow: no topic {', '.join(missing)} (yet); following the others, and "
              f"{'it' if len(missing) == 1 else 'those'} once created", file=sys.stderr)  # fmt: skip
    consumer.assign(parts)
    (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*parts)
    return missing


def _add_created(consumer: KafkaConsumer, missing: list[str]) -> list[str]:
    """Follow those of the missing topics that now exist, from their beginnings (everything in them
    was written since this started); the topics still missing."""
    new = _partitions(consumer, missing)
    if not new:
        return missing
    consumer.assign([*consumer.assignment(), *new])
    consumer.seek_to_beginning(*new)
    found = sorted({tp.topic for tp in new})
    print(f"worker follow: topic {', '.join(found)} created; following it too", file=sys.stderr)
    return [t for t in missing if t not in found]


def _line(topic: str, text: str) -> str:
    try:
        return describe(topic, json.loads(text))
    except (ValueError, KeyError, TypeError):  # not an output of the worker: as it is
        return f"{topic}: {text[:200]}"


def main(argv: list[str]) -> int:
    return run_tool("follow", FollowSettings, argv, follow)
