"""Compressed input on the real broker with both Kafka clients: every codec a producer may use is
read, and a compression bomb costs only itself (kafka-python refuses it before unpacking it all;
librdkafka refuses a zstd one, and unpacks a gzip one so that the worker dead-letters it as too
large). A topic stored uncompressed keeps bombs out at the broker."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from kafka.errors import MessageSizeTooLargeError

from schemas import image_message
from tests.worker_fakes import copy_bundle
from tests.worker_harness import WorkerThread, read_topic, wait_for, worker_settings
from tooling.kafka import create_topic, produce
from worker.kafka.protocol import KafkaConfigError
from worker.settings import WorkerSettings
from worker.source import build_clients, check_unpacking

pytestmark = pytest.mark.integration

LIMIT = 1 << 20  # --max-unpacked-bytes, at its least (and --max-message-bytes, its default)


def image(rid: str) -> bytes:
    return image_message(np.zeros((28, 28), np.uint8), id=rid)


def send(bootstrap: str, topic: str, codec: str, values: list[bytes], batch_bytes: int = 1 << 20) -> None:
    """One producer per codec, batching as a busy producer does (up to 1 MiB per batch)."""
    produce(bootstrap, topic, values, partition=0, timeout_s=300, compression_type=codec,
            batch_size=batch_bytes, linger_ms=500, max_request_size=64 << 20)  # fmt: skip


def test_every_codec_is_read_and_a_bomb_costs_only_itself(
    kafka_bootstrap, worker_topics, tiny_bundle, tmp_path, transport
) -> None:
    repo = copy_bundle(tiny_bundle, tmp_path).parent.parent
    topics = worker_topics("packed", stored_as_sent=True)
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

    # stored as sent: a confluent worker starts only when told to accept what that means for memory
    settings = worker_settings(kafka_bootstrap, repo, topics, transport=transport, max_unpacked_bytes=LIMIT,
                               unbounded_unpacking="warn")  # fmt: skip
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


def test_a_zstd_bomb_is_refused_before_it_is_unpacked_by_both_clients(
    kafka_bootstrap, worker_topics, tiny_bundle, tmp_path, transport
) -> None:
    repo = copy_bundle(tiny_bundle, tmp_path).parent.parent
    topics = worker_topics("zstd", stored_as_sent=True)
    send(kafka_bootstrap, topics["input"], "zstd", [image("before")])
    # 48 MiB of zeros, a few KiB packed: over librdkafka's cap (receive.message.max.bytes) as well;
    # then one batch of 24 records that unpacks to 24 MiB (librdkafka: stepped through, offset by offset)
    send(kafka_bootstrap, topics["input"], "zstd", [bytes(48 << 20)])
    send(kafka_bootstrap, topics["input"], "zstd", [bytes(1 << 20)] * 24, batch_bytes=64 << 20)
    send(kafka_bootstrap, topics["input"], "zstd", [image("after")])

    # stored as sent: a confluent worker starts only when told to accept what that means for memory
    settings = worker_settings(kafka_bootstrap, repo, topics, transport=transport, max_unpacked_bytes=LIMIT,
                               unbounded_unpacking="warn")  # fmt: skip
    with WorkerThread(settings) as w:
        assert wait_for(lambda: "after" in scored_ids(kafka_bootstrap, topics), timeout_s=90)
        assert w.thread.is_alive() and w.error is None
        w.stop()
    letters = [json.loads(m.value) for m in read_topic(kafka_bootstrap, topics["dead"])]

    assert sorted(scored_ids(kafka_bootstrap, topics)) == ["after", "before"]
    assert sorted(letter["source"]["offset"] for letter in letters) == list(range(1, 26))  # each once
    assert {letter["reason"] for letter in letters} == {"unreadable"}
    naming_the_limit = {m["source"]["offset"] for m in letters if "--max-unpacked-bytes" in m["error"]}
    assert naming_the_limit >= {1, 2}  # the first record of each batch, at least


def test_a_topic_stored_uncompressed_keeps_bombs_out_and_passes_the_unpacking_check(
    kafka_bootstrap, transport
) -> None:
    stored_plain = create_topic(kafka_bootstrap, f"plain-{uuid.uuid4().hex[:8]}", 1,
                                {"compression.type": "uncompressed"})  # fmt: skip
    as_sent = create_topic(kafka_bootstrap, f"as-sent-{uuid.uuid4().hex[:8]}", 1)
    # the broker unpacks the batch to store it, and a 16 MiB batch is over its max.message.bytes
    with pytest.raises(MessageSizeTooLargeError):
        send_one(kafka_bootstrap, stored_plain, bytes(16 << 20))
    send_one(kafka_bootstrap, stored_plain, image("small"))  # an ordinary batch is still taken

    source, sink = build_clients(WorkerSettings(bootstrap_servers=kafka_bootstrap, transport=transport,
                                                input_topics=stored_plain, metrics_port=0))  # fmt: skip
    try:
        configs = source.topic_configs([stored_plain, as_sent])
        assert configs[stored_plain]["compression.type"] == "uncompressed"
        assert configs[as_sent]["compression.type"] == "producer"  # Kafka's default: as the producer sent it
        refuse = {"bootstrap_servers": kafka_bootstrap, "transport": "confluent", "metrics_port": 0,
                  "unbounded_unpacking": "refuse"}  # fmt: skip
        check_unpacking(WorkerSettings(input_topics=stored_plain, **refuse), source)
        with pytest.raises(KafkaConfigError, match=as_sent):
            check_unpacking(WorkerSettings(input_topics=f"{stored_plain},{as_sent}", **refuse), source)
    finally:
        source.close()
        sink.close(5)


def send_one(bootstrap: str, topic: str, value: bytes) -> None:
    produce(bootstrap, topic, [value], partition=0, compression_type="gzip", max_request_size=64 << 20)


def scored_ids(bootstrap: str, topics: dict[str, str]) -> list[str]:
    messages = [*read_topic(bootstrap, topics["scores"], quiet_s=0.5),
                *read_topic(bootstrap, topics["alerts"], quiet_s=0.5)]  # fmt: skip
    return [json.loads(m.value)["record_id"] for m in messages]
