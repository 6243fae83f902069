"""Kafka plumbing the tests, the benchmarks and the tooling programs share: topics made as
docs/worker.md advises, producing, reading a topic back, a group's commits and a topic's end offsets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

# An input topic as docs/worker.md advises (a confluent worker requires it by default): stored
# uncompressed, so the broker refuses a batch that unpacks past max.message.bytes.
STORED_PLAIN = {"compression.type": "uncompressed"}


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    admin.close()
    return name


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    keys = keys or [None] * len(values)
    futures = [producer.send(topic, key=k, value=v) for k, v in zip(keys, values, strict=True)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0,
               quiet_s: float = 2.0, isolation: str = "read_uncommitted") -> list:  # fmt: skip
    """Every message of a topic: until `expect` arrived, or nothing new came for `quiet_s`."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        receive_message_max_bytes=8 << 20,
        isolation_level=isolation,
    )  # outputs may be near 1 MiB
    parts = consumer.partitions_for_topic(topic) or set()
    deadline = time.monotonic() + 10
    while not parts and time.monotonic() < deadline:
        time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in parts])
    consumer.seek_to_beginning()
    out: list = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        got = consumer.poll(timeout_ms=200)
        for batch in got.values():
            out.extend(batch)
            last_new = time.monotonic()
        if expect is not None and len(out) >= expect:
            break
        if expect is None and time.monotonic() - last_new > quiet_s:
            break
    consumer.close()
    return out


def read_json(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0) -> list[dict]:
    return [json.loads(m.value) for m in read_topic(bootstrap, topic, expect, timeout_s)]


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (partitions never committed are left out)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    out = {}
    for p in consumer.partitions_for_topic(topic) or ():
        offset = consumer.committed(TopicPartition(topic, p))
        if offset is not None:
            out[p] = offset
    consumer.close(autocommit=False)
    return out


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        receive_message_max_bytes=8 << 20,
    )  # outputs may be near 1 MiB
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return {tp.partition: off for tp, off in ends.items()}


def wait_for(condition: Callable[[], object], timeout_s: float = 120, every_s: float = 0.5) -> bool:
    """Whether `condition()` came true within `timeout_s` (generous: CI machines are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False



