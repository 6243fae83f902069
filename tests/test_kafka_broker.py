"""The project's own Apache Kafka: records go through it intact; the 3-broker mode replicates."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from schemas import ImageRecord, MetricPoint, Reason, Rejection, decode, image_message, metric_message
from tooling.broker import LocalKafka
from tooling.kafka import admin, consumer, produce, read_topic
from training.images.mnist import load_split

pytestmark = pytest.mark.integration


def produce_pairs(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    produce(bootstrap, topic, [v for _, v in messages], [k for k, _ in messages])  # raises if one failed


def consume_group(bootstrap: str, topic: str, group: str, expected: int, timeout_s: float = 30) -> list:
    member = consumer(bootstrap, topic, group_id=group, auto_offset_reset="earliest")
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        for batch in member.poll(timeout_ms=500).values():
            got.extend(batch)
    member.commit()
    member.close()
    return got


def test_thousand_records_through_a_consumer_group(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    produce_pairs(kafka_bootstrap, topic, [(str(i).encode(), f"r{i}".encode()) for i in range(1000)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    got = consume_group(kafka_bootstrap, topic, group, expected=1000)
    assert sorted(int(m.value[1:]) for m in got) == list(range(1000))
    assert {m.partition for m in got} == {0, 1, 2}
    # The group committed: a second consumer of the same group finds nothing left.
    assert consume_group(kafka_bootstrap, topic, group, expected=1, timeout_s=3) == []


def test_wire_records_survive_the_broker(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic()
    test = load_split("test")
    images = [(None, image_message(test.images[i], id=f"mnist/{i}")) for i in range(20)]
    metrics = [metric_message("api.latency_p99", 100.0 + i, labels={"host": "a"}) for i in range(5)]
    produce_pairs(kafka_bootstrap, topic, [*images, *metrics, (None, b'{"kind": "image", "shape": [28')])
    messages = read_topic(kafka_bootstrap, topic, expect=26, timeout_s=20)

    decoded = [decode(m.value) for m in messages]
    assert len(decoded) == 26
    for i, rec in enumerate(decoded[:20]):
        assert isinstance(rec, ImageRecord) and rec.id == f"mnist/{i}"
        np.testing.assert_allclose(rec.pixels, test.images[i] / 255.0, atol=1e-7)
    for m, rec in zip(messages[20:25], decoded[20:25], strict=True):
        assert isinstance(rec, MetricPoint) and m.key.decode() == rec.series_key
    assert isinstance(decoded[25], Rejection) and decoded[25].reason is Reason.INVALID_JSON


def test_three_broker_mode_replicates_and_stops_clean(tmp_path: Path) -> None:
    cluster = LocalKafka(home=tmp_path / "kafka3", brokers=3).start()
    pids = cluster.pids()
    try:
        assert len(pids) == 3
        with admin(cluster.bootstrap_servers) as client:
            assert len(client.describe_cluster()["brokers"]) == 3
            client.create_topics([NewTopic("replicated", num_partitions=2, replication_factor=3)])
            # Topic metadata reaches every broker a moment after the create returns.
            replicas: list[int] = []
            deadline = time.monotonic() + 20
            while replicas != [3, 3] and time.monotonic() < deadline:
                time.sleep(0.2)
                topic = client.describe_topics(["replicated"])[0]
                replicas = sorted(len(p["replicas"]) for p in topic["partitions"])
            assert replicas == [3, 3]
            [response] = client.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
        config = {entry[0]: entry[1] for entry in response.resources[0][4]}
        assert config["min.insync.replicas"] == "2"
        assert config["default.replication.factor"] == "3"
        produce(cluster.bootstrap_servers, "replicated", [b"x"] * 10)
    finally:
        cluster.stop()
    states = subprocess.run(
        ["ps", "-o", "stat=", "-p", ",".join(map(str, pids))], capture_output=True, text=True
    ).stdout.split()
    alive = [s for s in states if not s.startswith("Z")]  # a zombie has exited, unreaped
    assert alive == [], f"Kafka JVMs left behind: {states}"
