"""Compressed input on the real broker with both Kafka clients: every codec a producer may use is
read, and a compression bomb costs only itself (kafka-python refuses it before unpacking it all;
librdkafka unpacks it and the worker dead-letters it as too large)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kafka import KafkaProducer

from schemas import image_message
from tests.worker_fakes import copy_bundle
from tests.worker_harness import WorkerThread, read_topic, wait_for, worker_settings

pytestmark = pytest.mark.integration

LIMIT = 1 << 20  # --max-unpacked-bytes, at its least (and --max-message-bytes, its default)


def image(rid: str) -> bytes:
    return image_message(np.zeros((28, 28), np.uint8), id=rid)


def send(bootstrap: str, topic: str, compression: str, values: list[bytes]) -> None:
    """One producer per codec, batching as a busy producer does (up to 1 MiB per batch)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression,
                             batch_size=1 << 20, linger_ms=500, max_request_size=64 << 20)  # fmt: skip
    for value in values:
        producer.send(topic, value=value, partition=0)
    producer.flush()
    producer.close()


def test_every_codec_is_read_and_a_bomb_costs_only_itself(
    kafka_bootstrap, worker_topics, tiny_bundle, tmp_path, transport
) -> None:
    repo = copy_bundle(tiny_bundle, tmp_path).parent.parent
    topics = worker_topics("packed")
    expected: list[str] = []
    for codec in ("gzip", "lz4", "zstd", "snappy"):
        # 1,500 images of ~1 KB: batches of over half the limit, so a poll that unpacks two of
        # them leaves the second for the next poll (nothing may be lost or read twice)
        ids = [f"{codec}-{i}" for i in range(1500)]
        send(kafka_bootstrap, topics["input"], codec, [image(i) for i in ids])
        expected += ids
    send(kafka_bootstrap, topics["input"], "gzip", [bytes(16 << 20)])  # 16 MiB of zeros, ~16 KiB packed
    send(kafka_bootstrap, topics["input"], "gzip", [image("after")])
    expected.append("after")

    settings = worker_settings(kafka_bootstrap, repo, topics, transport=transport, max_unpacked_bytes=LIMIT)
    with WorkerThread(settings) as w:
        assert wait_for(lambda: "after" in scored_ids(kafka_bootstrap, topics), timeout_s=90)
        assert w.thread.is_alive() and w.error is None
        w.stop()
    scored = scored_ids(kafka_bootstrap, topics)
    letters = [json.loads(m.value) for m in read_topic(kafka_bootstrap, topics["dead"])]

    assert sorted(scored) == sorted(expected)  # each exactly once
    assert len(letters) == 1 and letters[0]["source"]["offset"] == len(expected) - 1
    if transport == "kafka-python":
        assert letters[0]["reason"] == "unreadable" and "--max-unpacked-bytes" in letters[0]["error"]
    else:
        assert letters[0]["reason"] == "too_large"


def scored_ids(bootstrap: str, topics: dict[str, str]) -> list[str]:
    messages = [*read_topic(bootstrap, topics["scores"], quiet_s=0.5),
                *read_topic(bootstrap, topics["alerts"], quiet_s=0.5)]  # fmt: skip
    return [json.loads(m.value)["record_id"] for m in messages]
