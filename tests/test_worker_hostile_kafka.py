"""Records within every size limit that used to stop a partition for good (issue 14's table), on the
real broker with both Kafka clients: each costs only itself, and the records around it are scored."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import numpy as np
import pytest

from schemas import image_message
from tests.worker_fakes import copy_bundle
from tests.worker_harness import WorkerThread, read_topic, wait_for, worker_settings
from tooling.kafka import create_topic, produce
from tooling.metric_bundles import write_last_point_bundle
from worker.settings import WorkerSettings
from worker.source import RECORD_OVERHEAD, build_clients, max_output_bytes

pytestmark = pytest.mark.integration


class NotUtf8(str):
    """A header key that kafka-python's producer writes as bytes that are not UTF-8 (its consumer
    then cannot parse the record)."""

    def encode(self, *args: object, **kwargs: object) -> bytes:
        return b"\xff\xfe"


def image(rid: str) -> bytes:
    return image_message(np.zeros((28, 28), np.uint8), id=rid)


def point(series: str, **fields: object) -> bytes:
    """A metric point as a producer may write it (schemas.metric_message refuses what the worker does)."""
    return json.dumps({"kind": "metric", "series": series, "value": 1.0, **fields}).encode()


def test_hostile_records_within_the_limits_cost_only_themselves(
    kafka_bootstrap, worker_topics, tiny_bundle, tmp_path, transport
) -> None:
    repo = copy_bundle(tiny_bundle, tmp_path).parent.parent
    write_last_point_bundle(repo / "kpi-test" / "1", window=4)
    topics = worker_topics("hostile")
    long_id = "x" * 600_000
    huge_key = b"k" * 600_000
    records: list[tuple[bytes | None, bytes, list]] = [
        (None, image("before"), []),
        (None, image(long_id), []),  # its alert and score message repeat the id (and key by it)
        (huge_key, b"{not json", []),  # a dead letter copies the key
        (b"q" * 50_000, b'{"kind": "image", "pad": "' + b"x" * 700_000 + b'"}', []),  # key + body
        (None, point("cpu", labels={"blob": "y" * 550_000}), []),  # labels in every output
        (None, point("far", ts="9999-12-31T23:59:59Z"), []),  # a grid in year 10000
        *[(None, point("far"), []) for _ in range(5)],  # then points without ts
        (None, image("odd-header"), [(NotUtf8("h"), b"v")]),  # a header key kafka-python could not read
        (None, image("after"), []),
    ]
    keys, values, headers = (list(column) for column in zip(*records, strict=True))
    sent = produce(kafka_bootstrap, topics["input"], values, keys, headers=headers, partition=0,
                   max_request_size=2_000_000)  # fmt: skip
    assert [m.offset for m in sent] == list(range(len(records)))

    settings = worker_settings(kafka_bootstrap, repo, topics, transport=transport)
    with WorkerThread(settings) as w:
        assert wait_for(
            lambda: "after" in {o["record_id"] for o in outputs(kafka_bootstrap, topics).values()}
        )
        assert w.thread.is_alive() and w.error is None  # still running: nothing stopped it
        w.stop()
    scored = outputs(kafka_bootstrap, topics)
    dead = {json.loads(m.value)["source"]["offset"]: m for m in read_topic(kafka_bootstrap, topics["dead"])}
    letters = {offset: json.loads(m.value) for offset, m in dead.items()}  # by the offset of their record

    assert scored[0]["record_id"] == "before" and scored[len(records) - 1]["record_id"] == "after"
    cut = scored[1]["record_id"]
    assert cut.startswith("xxx") and cut.endswith("(cut: the id is 600,000 characters)") and len(cut) <= 1024

    assert letters[2]["reason"] == "invalid_json" and letters[2]["original_key_truncated"]
    assert dead[2].key == b"sha256:" + hashlib.sha256(huge_key).hexdigest().encode()
    assert letters[3]["reason"] == "schema" and not letters[3]["original_truncated"]  # 700 KB fits whole
    assert base64.b64decode(letters[3]["original"]) == records[3][1]
    assert (
        letters[3]["original_key_truncated"] and base64.b64decode(letters[3]["original_key"]) == b"q" * 16_384
    )
    assert letters[4]["reason"] == "too_large" and "--max-series-key-bytes" in letters[4]["error"]
    assert letters[5]["reason"] == "bad_timestamp" and "9999-12-31" in letters[5]["error"]
    # The series "far" starts over with the points after: 3 warm it up, 2 complete windows, on a grid
    # that starts at their Kafka time (now), not past year 9999.
    assert [scored[o]["series_key"] for o in (9, 10)] == ["far", "far"] and scored[10]["ts"] < "2200"
    # kafka-python's own reader raised on that header key; it is an ordinary record now, as in librdkafka
    assert scored[len(records) - 2]["record_id"] == "odd-header"
    # Every record has exactly one outcome: an output, a dead letter, or held (warming: 6-8).
    assert sorted([*scored, *letters, 6, 7, 8]) == list(range(len(records)))


def outputs(bootstrap: str, topics: dict[str, str]) -> dict[int, dict]:
    """Alerts and score messages so far, by the offset of their input record."""
    messages = read_topic(bootstrap, topics["scores"], quiet_s=0.5) + read_topic(
        bootstrap, topics["alerts"], quiet_s=0.5
    )
    return {json.loads(m.value)["source"]["offset"]: json.loads(m.value) for m in messages}


def ids(outputs: dict[int, dict]) -> set[str]:
    return {o["record_id"] for o in outputs.values()}


def test_the_output_limit_is_the_smallest_the_broker_and_client_take(kafka_bootstrap, transport) -> None:
    small = create_topic(kafka_bootstrap, f"small-{uuid.uuid4().hex[:8]}", 1, {"max.message.bytes": "200000"})
    s = WorkerSettings(
        bootstrap_servers=kafka_bootstrap, transport=transport, alerts_topic=small, metrics_port=0
    )
    source, sink = build_clients(s)
    try:
        assert source.topic_configs([small, s.dead_letter_topic])[small]["max.message.bytes"] == "200000"
        assert max_output_bytes(s, source, sink) == 200_000 - RECORD_OVERHEAD
    finally:
        source.close()
        sink.close(5)
