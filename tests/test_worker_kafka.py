"""The worker end to end on the real broker: outcomes, dead letters, crashes, shutdown, metrics."""

from __future__ import annotations

import base64
import json
import signal
import urllib.request
import uuid
import zlib

import numpy as np
import pytest

from schemas import AnomalyAlert, DeadLetter, ScoreMessage, image_message, metric_message
from tests.worker_harness import (
    WorkerThread,
    committed,
    end_offsets,
    produce,
    read_json,
    start_worker_process,
    wait_for,
    worker_settings,
)
from tooling.broker import LocalKafka
from tooling.kafka import STORED_PLAIN, SteadyStream, create_topic, create_topics, read_topic
from training.images.mnist import load_split
from worker.settings import WorkerSettings
from worker.source import build_clients

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(worker_topics) -> dict[str, str]:
    return worker_topics("images")


@pytest.fixture(scope="module")
def mnist_stream() -> tuple[list[bytes], np.ndarray]:
    """Test-set 1s, 4s and 5s in test-set order, as wire messages with ids, and their digits."""
    test = load_split("test")
    idx = np.flatnonzero(np.isin(test.labels, (1, 4, 5)))[:1500]
    return [image_message(test.images[i], id=f"mnist/{i}") for i in idx], test.labels[idx]


def repository(tiny_bundle):
    return tiny_bundle.folder.parent.parent


def outcome_ids(bootstrap: str, topics: dict[str, str]) -> tuple[list[str], list[str], list[dict]]:
    alerts = [a["record_id"] for a in read_json(bootstrap, topics["alerts"])]
    scores = [s["record_id"] for s in read_json(bootstrap, topics["scores"])]
    dead = read_json(bootstrap, topics["dead"])
    return alerts, scores, dead


def outputs_so_far(bootstrap: str, topics: dict[str, str]) -> int:
    return sum(end_offsets(bootstrap, topics["alerts"]).values()) + sum(
        end_offsets(bootstrap, topics["scores"]).values()
    )


def test_mnist_stream_alerts_on_fives_not_on_ones_and_fours(kafka_bootstrap, topics, tiny_bundle,
                                                            mnist_stream, transport) -> None:  # fmt: skip
    messages, digits = mnist_stream
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, transport=transport)
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], messages)
        assert wait_for(
            lambda: w.sample("anomaly_worker_records_scored_total", model="tiny-vae:1") >= len(messages)
        )
        w.stop()
    alerts = [AnomalyAlert.model_validate(a) for a in read_json(kafka_bootstrap, topics["alerts"])]
    raw_scores = read_json(kafka_bootstrap, topics["scores"])
    scores = [ScoreMessage.model_validate(s) for s in raw_scores]
    # Every alert says where its error lies; no score message carries a map.
    maps = [a.anomaly_map for a in alerts]
    assert all(m is not None and (m.height, m.width, m.cell) == (28, 28, 1) for m in maps)
    assert all(m.region.width * m.region.height < 28 * 28 for m in maps)
    assert not any("anomaly_map" in s for s in raw_scores)
    by_id = {a.record_id for a in alerts}
    ids = [f"mnist/{i}" for i in np.flatnonzero(np.isin(load_split("test").labels, (1, 4, 5)))[:1500]]
    is_five = digits == 5
    recall = np.mean([rid in by_id for rid, five in zip(ids, is_five, strict=True) if five])
    false_alarms = np.mean([rid in by_id for rid, five in zip(ids, is_five, strict=True) if not five])
    assert recall >= 0.95
    # Calibrated at p99 of the training normals: test normals alarm at about 1-3 %.
    assert false_alarms <= 0.04
    # Every record has exactly one outcome: an alert or a score message.
    assert sorted([a.record_id for a in alerts] + [s.record_id for s in scores]) == sorted(ids)
    threshold = tiny_bundle.manifest.threshold
    assert all(a.score >= threshold and a.threshold == threshold and 0.5 <= a.severity <= 1 for a in alerts)
    assert all(s.score < threshold for s in scores)
    assert all(a.model == "tiny-vae" and a.model_version == "1" and a.source.topic == topics["input"]
               for a in alerts)  # fmt: skip
    # SIGTERM-free stop() drained and committed everything.
    assert committed(kafka_bootstrap, topics["group"], topics["input"]) == end_offsets(
        kafka_bootstrap, topics["input"]
    )


def test_each_dead_letter_reason(kafka_bootstrap, topics, tiny_bundle) -> None:
    good = image_message(np.zeros((28, 28), np.uint8), id="ok")
    bad = {
        "invalid_json": b"{not json",
        "not_an_object": b"[1, 2]",
        "unknown_kind": b'{"kind": "video"}',
        "schema": b'{"kind": "image", "shape": [28, 28], "dtype": "uint8"}',
        "bad_base64": b'{"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": "***"}',
        "shape_mismatch": image_message(np.zeros((27, 27), np.uint8)),  # valid, but not the model's shape
        "non_finite": b'{"kind": "metric", "series": "a", "value": NaN}',
        # pixels of 3.0 in float32 (image_message itself refuses to build it)
        "out_of_range": b'{"kind":"image","shape":[2,2],"dtype":"float32","data":"AABAQAAAQEAAAEBAAABAQA=="}',
        "unknown_model": image_message(np.zeros((28, 28), np.uint8), model="no-such-model"),
        "too_large": b'{"kind": "image", "pad": "' + b"x" * 3000 + b'"}',
    }
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, max_message_bytes=2000)
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], [*bad.values(), good], keys=[b"k"] * (len(bad) + 1))
        letters = [DeadLetter.model_validate(d) for d in read_json(kafka_bootstrap, topics["dead"], len(bad))]
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 1, 30)
        w.stop()
    by_reason = {d.reason.value: d for d in letters}
    assert set(by_reason) == set(bad)
    for reason, raw in bad.items():
        letter = by_reason[reason]
        assert base64.b64decode(letter.original) == raw  # the original bytes, byte for byte
        assert letter.original_size == len(raw) and not letter.original_truncated
        assert base64.b64decode(letter.original_key) == b"k"
        assert letter.source.topic == topics["input"] and letter.error
    # The poison did not stop the worker: the good record behind it was scored.
    scored = read_json(kafka_bootstrap, topics["scores"]) + read_json(kafka_bootstrap, topics["alerts"])
    assert {s["record_id"] for s in scored} == {"ok"}


def test_metric_points_are_dead_lettered_when_no_metric_model_is_served(kafka_bootstrap, topics, tiny_bundle):
    key, value = metric_message("cpu", 0.5, labels={"host": "a"})
    with WorkerThread(worker_settings(kafka_bootstrap, repository(tiny_bundle), topics)) as w:
        produce(kafka_bootstrap, topics["input"], [value], keys=[key])
        [letter] = read_json(kafka_bootstrap, topics["dead"], 1)
        w.stop()
    assert letter["reason"] == "unknown_model" and "metric" in letter["error"]


def test_sigkill_mid_stream_then_restart_loses_nothing(
    kafka_bootstrap, topics, tiny_bundle, mnist_stream, transport
):
    images, _ = mnist_stream
    # Records stream in while the worker runs, in small batches, and go on after the kill: it lands
    # mid-stream however fast the worker is.
    def record(i: int) -> bytes:  # the images in turn, each with an id of its own
        return images[i % len(images)].replace(b'"id":"mnist/', f'"id":"s{i}/'.encode())

    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, transport=transport,
                               max_batch=16, commit_interval_ms=100)  # fmt: skip
    stream = SteadyStream(kafka_bootstrap, topics["input"], record, 40)
    proc = start_worker_process(settings)
    try:
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 300, 90, every_s=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        stream.stop(more=500)
    expected = {json.loads(record(i))["id"] for i in range(stream.sent)}
    before = committed(kafka_bootstrap, topics["group"], topics["input"])
    assert sum(before.values()) < stream.sent, "the kill should have left work to redo"
    restarted = start_worker_process(settings)
    try:
        assert wait_for(lambda: committed(kafka_bootstrap, topics["group"], topics["input"])
                        == end_offsets(kafka_bootstrap, topics["input"]), 120)  # fmt: skip
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(60) == 0
    finally:
        restarted.kill()
    alerts, scores, dead = outcome_ids(kafka_bootstrap, topics)
    assert set(alerts) | set(scores) == expected  # at least once: every record has an outcome
    assert dead == []


def test_sigterm_drains_commits_and_leaves_nothing_to_reprocess(kafka_bootstrap, topics, tiny_bundle,
                                                                mnist_stream, transport) -> None:  # fmt: skip
    messages, _ = mnist_stream
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, transport=transport,
                               max_batch=64, max_wait_ms=5000, commit_interval_ms=60_000)  # fmt: skip
    produce(kafka_bootstrap, topics["input"], messages[:500])
    proc = start_worker_process(settings)
    try:
        # A long max wait and commit interval: at SIGTERM, batches and commits are still open.
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 64, 90, every_s=0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    alerts, scores, _ = outcome_ids(kafka_bootstrap, topics)
    handled = len(alerts) + len(scores)
    done = committed(kafka_bootstrap, topics["group"], topics["input"])
    # Everything committed has its output, and nothing with an output is left uncommitted.
    assert sum(done.values()) == handled
    # A restart finds the rest and nothing twice.
    with WorkerThread(settings.model_copy(update={"max_wait_ms": 20, "commit_interval_ms": 100})) as w:
        assert wait_for(lambda: committed(kafka_bootstrap, topics["group"], topics["input"])
                        == end_offsets(kafka_bootstrap, topics["input"]), 90)  # fmt: skip
        w.stop()
    alerts, scores, _ = outcome_ids(kafka_bootstrap, topics)
    assert sorted(alerts + scores) == sorted(json.loads(m)["id"] for m in messages[:500])


def test_nothing_is_committed_when_a_produce_fails(
    kafka_bootstrap, topics, tiny_bundle, mnist_stream, transport
):
    messages, digits = mnist_stream
    # An alerts topic that refuses every alert: larger than its max.message.bytes.
    topics["alerts"] = create_topic(kafka_bootstrap, f"tiny-alerts-{uuid.uuid4().hex[:8]}", 1,
                                    {"max.message.bytes": "100"})  # fmt: skip
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, transport=transport)
    five = next(i for i, d in enumerate(digits) if d == 5)
    produce(kafka_bootstrap, topics["input"], messages[five : five + 50])
    proc = start_worker_process(settings)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "not acknowledged" in out and "without committing" in out
    assert committed(kafka_bootstrap, topics["group"], topics["input"]) == {}


def test_metrics_and_health_endpoints(kafka_bootstrap, topics, tiny_bundle, mnist_stream) -> None:
    messages, _ = mnist_stream
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics)
    with WorkerThread(settings) as w:
        base = f"http://127.0.0.1:{w.port}"
        assert wait_for(lambda: _ok(base + "/readyz"), 30)
        assert _ok(base + "/healthz")
        produce(kafka_bootstrap, topics["input"], [*messages[:200], b"garbage"])
        assert wait_for(lambda: 'records_scored_total{model="tiny-vae:1"} 200.0' in _get(base + "/metrics"))
        w.stop()
    text = _get_text(w)
    assert f'anomaly_worker_records_consumed_total{{topic="{topics["input"]}"}} 201.0' in text
    n_alerts = sum(1 for a in read_json(kafka_bootstrap, topics["alerts"]))
    assert f'anomaly_worker_alerts_total{{model="tiny-vae:1"}} {float(n_alerts)}' in text
    assert 'anomaly_worker_dead_letters_total{reason="invalid_json"} 1.0' in text
    assert (
        "anomaly_worker_inference_seconds_count" in text
        and "anomaly_worker_end_to_end_seconds_bucket" in text
    )
    assert "anomaly_worker_batch_size_records_bucket" in text
    assert (
        'anomaly_worker_model_info{model="tiny-vae",provider="CPUExecutionProvider",version="1"} 1.0' in text
    )
    assert "anomaly_worker_model_threshold" in text and "anomaly_worker_assigned_partitions 2.0" in text


def _ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except Exception:
        return False


def _get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except Exception:
        return ""


def _get_text(w: WorkerThread) -> str:
    from prometheus_client import generate_latest

    return generate_latest(w.registry).decode()


def test_a_second_worker_joining_takes_partitions_and_nothing_is_lost(
    kafka_bootstrap, topics, tiny_bundle, mnist_stream, transport
) -> None:
    images, _ = mnist_stream
    messages = [m.replace(b'"id":"mnist/', f'"id":"r{r}/'.encode()) for r in range(2) for m in images]
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, transport=transport,
                               max_batch=16, commit_interval_ms=100)  # fmt: skip
    with WorkerThread(settings) as first:
        produce(kafka_bootstrap, topics["input"], messages[:1500])
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 200, 60, every_s=0.05)
        with WorkerThread(settings) as second:
            produce(kafka_bootstrap, topics["input"], messages[1500:])
            assert wait_for(lambda: second.worker.consumer.assignment() != set(), 60)
            assert wait_for(lambda: committed(kafka_bootstrap, topics["group"], topics["input"])
                            == end_offsets(kafka_bootstrap, topics["input"]), 120)  # fmt: skip
            assert len(first.worker.consumer.assignment()) == len(second.worker.consumer.assignment()) == 1
            second.stop()
        first.stop()
    alerts, scores, dead = outcome_ids(kafka_bootstrap, topics)
    assert set(alerts) | set(scores) == {json.loads(m)["id"] for m in messages}
    assert dead == []


def test_a_stop_while_the_broker_is_away_exits_and_loses_nothing(
    tmp_path, tiny_bundle, mnist_stream, transport
) -> None:
    """The broker goes away, then SIGTERM: the last commit cannot be made. The worker says so and
    exits (kafka-python alone would wait for the coordinator forever); the records come back."""
    messages, _ = mnist_stream
    broker = LocalKafka(home=tmp_path / "kafka").start()
    try:
        bootstrap = broker.bootstrap_servers
        topics = {"input": "in", "alerts": "alerts", "dead": "dead", "scores": "scores", "group": "g"}
        create_topics(bootstrap, {"in": 2, "alerts": 1, "dead": 1, "scores": 1}, {"in": STORED_PLAIN})
        # No periodic commit: the commit at the stop is the only one.
        settings = worker_settings(bootstrap, repository(tiny_bundle), topics, transport=transport,
                                   commit_interval_ms=600_000)  # fmt: skip
        produce(bootstrap, "in", messages[:100])
        proc = start_worker_process(settings)
        try:
            assert wait_for(lambda: outputs_so_far(bootstrap, topics) >= 100, 90)
            broker.stop()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=90)
        finally:
            proc.kill()
        assert proc.returncode == 0, out
        assert "the last commit did not go through" in out and "stopped cleanly" not in out
        broker.start()  # the same data: the outputs made before the stop are still there
        assert committed(bootstrap, "g", "in") == {}
        with WorkerThread(settings.model_copy(update={"commit_interval_ms": 100})) as w:
            assert wait_for(lambda: committed(bootstrap, "g", "in") == end_offsets(bootstrap, "in"), 90)
            w.stop()
        alerts, scores, dead = outcome_ids(bootstrap, topics)
        assert len(alerts) + len(scores) == 200  # each record twice: once before the stop, once after
        assert set(alerts) | set(scores) == {json.loads(m)["id"] for m in messages[:100]}
        assert dead == []
    finally:
        broker.stop()


def test_both_clients_put_an_output_key_on_the_same_partition(kafka_bootstrap) -> None:
    """kafka-python takes librdkafka's partitioner (CRC-32 of the key): an alert's key lands on the
    same partition whichever client the worker runs."""
    topic = create_topic(kafka_bootstrap, f"keyed-{uuid.uuid4().hex[:8]}", 5)
    keys = [f"mnist/{i}".encode() for i in range(40)] + ["cpu{host=é}".encode()]
    for transport in ("kafka-python", "confluent"):
        source, sink = build_clients(WorkerSettings(bootstrap_servers=kafka_bootstrap, transport=transport,
                                                    input_topics=topic, metrics_port=0))  # fmt: skip
        try:
            for key in keys:
                sink.send(topic, key, transport.encode())
            sink.flush(30)
        finally:
            source.close()
            sink.close(5)
    written = read_topic(kafka_bootstrap, topic, 2 * len(keys))
    placed = {(m.key, m.value): m.partition for m in written}
    assert len(placed) == 2 * len(keys)
    for key in keys:
        assert placed[(key, b"kafka-python")] == placed[(key, b"confluent")] == zlib.crc32(key) % 5, key
    assert len({placed[(k, b"confluent")] for k in keys}) == 5  # spread over every partition
