"""Kafka plumbing the tests, the benchmarks, the demo and the tooling programs share: the clients with
their usual options, topics made as docs/worker.md#topics advises, producing (all at once, at a steady rate,
or from a thread), reading a topic back, a group's commits and a topic's end offsets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.producer.future import RecordMetadata

# An input topic as docs/worker.md#topics advises (a confluent worker requires it by default): stored
# uncompressed, so the broker refuses a batch that unpacks past max.message.bytes.
STORED_PLAIN = {"compression.type": "uncompressed"}


# A producer that waits out a broker outage of minutes: nothing it was given is dropped.
PATIENT = {"enable_idempotence": True, "delivery_timeout_ms": 300_000, "max_block_ms": 300_000}


def producer(bootstrap: str, **options: object) -> KafkaProducer:
    """A producer for tests, benchmarks and tools: acks=all, 5 ms linger, unless `options` say otherwise."""
    return KafkaProducer(**{"bootstrap_servers": bootstrap, "acks": "all", "linger_ms": 5, **options})


def consumer(bootstrap: str, *topics: str, **options: object) -> KafkaConsumer:
    """A reader outside any group (unless `group_id` is given) that commits nothing; outputs may be
    near 1 MiB, so it takes messages up to 8 MiB."""
    defaults = {"group_id": None, "enable_auto_commit": False, "receive_message_max_bytes": 8 << 20}
    return KafkaConsumer(*topics, **{"bootstrap_servers": bootstrap, **defaults, **options})


@contextmanager
def admin(bootstrap: str, **options: object) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        yield client
    finally:
        client.close()


def create_topics(bootstrap: str, partitions: dict[str, int],
                  configs: dict[str, dict[str, str]] | None = None,
                  client: KafkaAdminClient | None = None, replicas: int = 1) -> None:  # fmt: skip
    """Topics with these partition counts, each with its `configs` if it has any; through `client`
    when given (one admin client for many topics), else a client of its own."""
    if client is None:
        with admin(bootstrap) as own:
            return create_topics(bootstrap, partitions, configs, own, replicas)
    configs = configs or {}
    client.create_topics([NewTopic(name, n, replicas, topic_configs=configs.get(name, {}))
                          for name, n in partitions.items()])  # fmt: skip
    return None


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None,
                 client: KafkaAdminClient | None = None) -> str:  # fmt: skip
    create_topics(bootstrap, {name: partitions}, {name: configs or {}}, client)
    return name


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None, *,
            partition: int | list[int] | None = None, headers: list[list] | None = None,
            timeout_s: float = 60, **options: object) -> list[RecordMetadata]:  # fmt: skip
    """Send every value (with its key, headers and partition when given), wait until each is written
    and return where each went; raises if one was not written."""
    client = producer(bootstrap, **options)
    try:
        futures = []
        for i, value in enumerate(values):
            part = partition[i] if isinstance(partition, list) else partition
            futures.append(client.send(topic, key=keys[i] if keys else None, value=value,
                                       headers=headers[i] if headers else None, partition=part))  # fmt: skip
        client.flush(timeout=timeout_s)
        return [f.get(timeout=timeout_s) for f in futures]
    finally:
        client.close()


def produce_at_rate(bootstrap: str, topic: str, values: list[bytes], rate: float,
                    keys: list[bytes] | None = None, **options: object) -> list[int]:  # fmt: skip
    """Send one value every 1/rate s (acks=1, no linger: each goes at once); returns each one's create
    time (ms since the epoch), in order."""
    client = producer(bootstrap, **{"acks": 1, "linger_ms": 0, **options})
    try:
        futures = []
        t0 = time.perf_counter()
        for i, value in enumerate(values):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(client.send(topic, key=keys[i] if keys else None, value=value))
        client.flush()
        return [f.get(timeout=30).timestamp for f in futures]
    finally:
        client.close()


class SteadyStream:
    """Values produced from a thread of its own, `per_tick` every `tick_s`, until stop(): `make(i)`
    gives the i-th. `sent` is what the topic holds once stop() returns."""

    def __init__(self, bootstrap: str, topic: str, make: Callable[[int], bytes], per_tick: int,
                 tick_s: float = 0.1, **options: object) -> None:  # fmt: skip
        self.producer = producer(bootstrap, **options)
        self.topic, self.make, self.per_tick, self.tick_s = topic, make, per_tick, tick_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def __enter__(self) -> SteadyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send(self, n: int) -> None:
        for _ in range(n):
            self.producer.send(self.topic, self.make(self.sent))
            self.sent += 1

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.send(self.per_tick)

    def stop(self, more: int = 0, timeout_s: float = 300) -> None:
        """Stop the thread, send `more` after it, and wait until everything sent is written."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(60)
        self.send(more)
        self.producer.flush(timeout=timeout_s)
        self.producer.close()


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0,
               quiet_s: float = 2.0, isolation: str = "read_uncommitted") -> list:  # fmt: skip
    """Every message of a topic: until `expect` arrived, or nothing new came for `quiet_s`."""
    reader = consumer(bootstrap, isolation_level=isolation)
    parts = reader.partitions_for_topic(topic) or set()
    deadline = time.monotonic() + 10
    while not parts and time.monotonic() < deadline:
        time.sleep(0.2)
        parts = reader.partitions_for_topic(topic) or set()
    reader.assign([TopicPartition(topic, p) for p in parts])
    reader.seek_to_beginning()
    out: list = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        got = reader.poll(timeout_ms=200)
        for batch in got.values():
            out.extend(batch)
            last_new = time.monotonic()
        if expect is not None and len(out) >= expect:
            break
        if expect is None and time.monotonic() - last_new > quiet_s:
            break
    reader.close()
    return out


def read_json(bootstrap: str, topic: str, expect: int | None = None, timeout_s: float = 30.0) -> list[dict]:
    return [json.loads(m.value) for m in read_topic(bootstrap, topic, expect, timeout_s)]


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (partitions never committed are left out)."""
    reader = consumer(bootstrap, group_id=group)
    out = {}
    for p in reader.partitions_for_topic(topic) or ():
        offset = reader.committed(TopicPartition(topic, p))
        if offset is not None:
            out[p] = offset
    reader.close(autocommit=False)
    return out


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    reader = consumer(bootstrap)
    tps = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
    ends = reader.end_offsets(tps)
    reader.close()
    return {tp.partition: off for tp, off in ends.items()}


def wait_for(condition: Callable[[], object], timeout_s: float = 120, every_s: float = 0.5) -> bool:
    """Whether `condition()` came true within `timeout_s` (generous: CI machines are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False



