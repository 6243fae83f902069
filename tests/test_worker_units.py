"""Worker pieces without Kafka: batching, offsets, routing, bundle checks, device choice, settings, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from schemas import Reason, Rejection, image_message, metric_message
from worker.batch import Batcher
from worker.device import CPU, choose_providers, cuda_device_count
from worker.offsets import OffsetTracker
from worker.registry import BundleError, ModelRegistry, load_bundle
from worker.route import route
from worker.score import score_batch

REPO = Path(__file__).resolve().parents[1]


def message(value: bytes, offset: int = 0, partition: int = 0, topic: str = "in") -> ConsumerRecord:
    return ConsumerRecord(topic, partition, -1, offset, 0, 0, None, value, [], None, -1, len(value), -1)


@pytest.fixture(scope="module")
def registry(tiny_bundle) -> ModelRegistry:
    return ModelRegistry.load(tiny_bundle.folder.parent.parent, "cpu", None, None)


def routed(raw: bytes, registry: ModelRegistry, offset: int = 0, partition: int = 0):
    return route(message(raw, offset, partition), registry, 1 << 20, {})


def test_route_gives_the_default_model_and_a_default_id(registry) -> None:
    model, item = routed(image_message(np.zeros((28, 28), np.uint8)), registry, offset=7)
    assert model.key == "tiny-vae:1" and item.record_id == "in:0:7"
    model, item = routed(image_message(np.zeros((28, 28), np.uint8), id="x", model="tiny-vae:1"), registry)
    assert item.record_id == "x"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (image_message(np.zeros((28, 28), np.uint8), model="other"), Reason.UNKNOWN_MODEL),
        (image_message(np.zeros((28, 28), np.uint8), model="tiny-vae:9"), Reason.UNKNOWN_MODEL),
        (image_message(np.zeros((14, 14), np.uint8)), Reason.SHAPE_MISMATCH),
        (metric_message("cpu", 1.0)[1], Reason.UNKNOWN_MODEL),
        (b"nope", Reason.INVALID_JSON),
    ],
)
def test_route_rejections(registry, raw: bytes, reason: Reason) -> None:
    result = routed(raw, registry)
    assert isinstance(result, Rejection) and result.reason is reason and result.error


def test_batcher_by_size_by_time_and_pending_offsets(registry) -> None:
    model = registry.resolve(None)
    batcher = Batcher(max_batch=3, max_wait_ms=50)
    raw = image_message(np.zeros((28, 28), np.uint8))
    items = [routed(raw, registry, offset=o, partition=o % 2)[1] for o in range(5)]
    assert batcher.add(model, items[0]) is None and batcher.add(model, items[1]) is None
    full = batcher.add(model, items[2])
    assert full is not None and [i.message.offset for i in full.items] == [0, 1, 2]
    batcher.add(model, items[3])
    batcher.add(model, items[4])
    assert batcher.pending_offsets() == {("in", 1): 3, ("in", 0): 4}
    opened = batcher._open[model.key].opened_at
    assert batcher.due(now=opened + 0.01) == []
    assert 0 < batcher.seconds_to_next_due(now=opened + 0.01) <= 0.05
    [due] = batcher.due(now=opened + 0.06)
    assert len(due.items) == 2 and len(batcher) == 0 and batcher.pending_offsets() == {}


def test_offsets_stay_below_waiting_records_and_never_go_back() -> None:
    t = OffsetTracker()
    for o in range(10):
        t.seen("in", 0, o)
    t.seen("in", 1, 4)
    offsets = t.committable({("in", 0): 6})
    assert offsets == {("in", 0): 6, ("in", 1): 5}
    t.committed(offsets)
    assert t.committable({("in", 0): 6}) == {}  # nothing new
    # On a revocation or at shutdown every position is committed again and waited for: the
    # periodic commits are not waited for, and one of them may have failed.
    assert t.committable({("in", 0): 6}, again=True) == {("in", 0): 6, ("in", 1): 5}
    assert t.committable({}) == {("in", 0): 10}
    t.keep_only({("in", 1)})  # partition 0 went to another worker
    assert t.committable({}) == {} and t.position("in", 0) is None and t.position("in", 1) == 5


def test_score_batch_slices_to_max_batch_and_matches_one_run(registry) -> None:
    model = registry.resolve(None)
    x = np.random.default_rng(0).random((70, 28, 28), dtype=np.float32)
    sliced = score_batch(model, x, max_batch=16)
    whole = score_batch(model, x, max_batch=1024)
    assert sliced.shape == (70,)
    np.testing.assert_allclose(sliced, whole, rtol=1e-5)


def copy_bundle(tiny_bundle, tmp_path: Path) -> Path:
    dest = tmp_path / "repo" / "tiny-vae" / "1"
    shutil.copytree(tiny_bundle.folder, dest)
    return dest


def test_corrupted_model_is_refused_with_the_reason(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model.onnx: sha256 does not match the manifest"):
        load_bundle(folder, [CPU])


def test_bundle_with_a_missing_file_or_a_bad_manifest_is_refused(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    (folder / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"decoder\.onnx is listed in the manifest but missing"):
        load_bundle(folder, [CPU])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["input"]["shape"] = [32, 32]
    manifest["preprocessing"]["record_shape"] = [32, 32]
    del manifest["files"]["decoder.onnx"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"graph input shape .* does not match the manifest"):
        load_bundle(folder, [CPU])
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(BundleError, match="not a valid manifest"):
        load_bundle(folder, [CPU])


def test_registry_versions_and_default(tiny_bundle, tmp_path: Path) -> None:
    v1 = copy_bundle(tiny_bundle, tmp_path)
    v2 = v1.parent / "2"
    shutil.copytree(v1, v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = "2"
    (v2 / "manifest.json").write_text(json.dumps(manifest))
    reg = ModelRegistry.load(tmp_path / "repo", "cpu", None, None)
    assert reg.names() == ["tiny-vae:1", "tiny-vae:2"]
    assert reg.resolve("tiny-vae").key == "tiny-vae:2" and reg.resolve("tiny-vae:1").key == "tiny-vae:1"
    assert reg.default is None  # two models and no --default-model: records must name one
    assert ModelRegistry.load(tmp_path / "repo", "cpu", None, "tiny-vae:1").default.key == "tiny-vae:1"
    with pytest.raises(BundleError, match="not among the loaded models"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, "nope")
    with pytest.raises(BundleError, match="no model bundles"):
        ModelRegistry.load(tmp_path / "repo", "cpu", "other", None)


def test_cpu_machine_gets_the_cpu_provider_without_asking_for_cuda() -> None:
    assert choose_providers("cpu") == [CPU]
    if cuda_device_count() == 0:  # CI and the development machine have no GPU
        assert choose_providers("auto") == [CPU]
        with pytest.raises(RuntimeError, match="--device cuda"):
            choose_providers("cuda")


def run_worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", "--metrics-port", "0", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_cli_missing_model_repository_is_one_line(tmp_path: Path) -> None:
    done = run_worker("--model-repository", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "model repository" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_corrupted_bundle_is_one_line(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    (folder / "model.onnx").write_bytes(b"not a model")
    done = run_worker("--model-repository", str(tmp_path / "repo"))
    assert done.returncode == 1 and "sha256 does not match" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_unreachable_broker_is_one_error_line(tiny_bundle, tmp_path: Path) -> None:
    copy_bundle(tiny_bundle, tmp_path)
    done = run_worker("--model-repository", str(tmp_path / "repo"), "--bootstrap-servers", "127.0.0.1:1")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot reach Kafka at 127.0.0.1:1" in errors[0], done.stderr


def test_cli_bad_option_names_flag_and_variable() -> None:
    done = run_worker("--max-batch", "0")
    assert done.returncode == 2
    assert "--max-batch / WORKER_MAX_BATCH" in done.stderr


def test_cli_help_lists_every_public_option() -> None:
    done = run_worker("--help")
    for flag in ("--bootstrap-servers", "--input-topics", "--alerts-topic", "--dead-letter-topic",
                 "--scores-topic", "--group-id", "--model-repository", "--default-model", "--max-batch",
                 "--max-wait-ms", "--device", "--metrics-host", "--metrics-port", "--log-level", "--log-json",
                 "--security-protocol", "--sasl-mechanism", "--sasl-username", "--sasl-password",
                 "--ssl-cafile", "--ssl-certfile", "--ssl-keyfile"):  # fmt: skip
        assert flag in done.stdout


def test_secrets_never_reach_a_repr() -> None:
    from worker.settings import WorkerSettings

    s = WorkerSettings(sasl_mechanism="PLAIN", sasl_username="u", sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.kafka_common()["sasl_plain_password"] == "hunter2"


def test_confluent_transport_without_its_package_says_how_to_install(monkeypatch) -> None:
    import worker.transport_confluent as confluent
    from worker.settings import WorkerSettings
    from worker.transport import StartupError

    monkeypatch.setattr(confluent, "Consumer", None)
    with pytest.raises(StartupError, match=r"pip install 'vae-anomaly-worker\[confluent\]'"):
        confluent.build(WorkerSettings(transport="confluent"))


class _RevokingSource:
    """A client that, like librdkafka, runs the revocation callback from close()."""

    def __init__(self, messages: list) -> None:
        self.messages, self.committed, self.revoke = messages, [], None

    def subscribe(self, topics, on_assigned, on_revoked) -> None:
        self.revoke = on_revoked
        on_assigned([("in", 0)])

    def poll(self, timeout_ms: int, max_records: int) -> list:
        got, self.messages = self.messages, []
        return got

    def commit(self, offsets, wait=True) -> None:
        self.committed.append(dict(offsets))

    def assignment(self):
        return {("in", 0)}

    def highwater(self, topic, partition):
        return None

    def close(self) -> None:
        self.revoke([("in", 0)])


class _RefusingSink:
    def send(self, topic, key, value):
        raise RuntimeError("the producer refused the output")

    def flush(self, timeout_s) -> None:
        pass

    def close(self, timeout_s) -> None:
        pass


def test_a_loop_that_breaks_commits_nothing_even_when_close_revokes(registry) -> None:
    from worker.app import Worker, new_metrics
    from worker.health import Health
    from worker.settings import WorkerSettings
    from worker.transport import Message

    source = _RevokingSource([Message("in", 0, 0, None, b"{not json", 0)])  # -> a dead letter
    metrics, _ = new_metrics()
    worker = Worker(WorkerSettings(metrics_port=0), registry, source, _RefusingSink(), metrics, Health())
    with pytest.raises(RuntimeError, match="refused"):
        worker.run()
    assert source.committed == []  # offset 0 has no output: committing 1 would lose it


def test_batch_histogram_exposes_what_a_prometheus_histogram_would() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from worker.metrics import LATENCY_BUCKETS, BatchHistogram

    values = [0.0, 0.001, 0.0011, 0.02, 0.5, 3.0, 99.0, 0.0025]  # edges, between, beyond the last bucket
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bulk = BatchHistogram("lat_seconds", "doc", ["model"], LATENCY_BUCKETS, ours)
    plain = Histogram("lat_seconds", "doc", ["model"], buckets=LATENCY_BUCKETS, registry=theirs)
    bulk.labels(model="m").observe_many(np.array(values[:5]))
    bulk.labels(model="m").observe_many(np.array(values[5:]))
    bulk.labels(model="m").observe_many(np.array([]))
    for v in values:
        plain.labels(model="m").observe(v)
    exposed = [line for line in generate_latest(ours).decode().splitlines() if "created" not in line]
    expected = [line for line in generate_latest(theirs).decode().splitlines() if "created" not in line]
    assert exposed == expected
    assert 'lat_seconds_bucket{le="0.001",model="m"} 2.0' in exposed  # 0.0 and 0.001 (le: at or below)


class _RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict]] = []

    def send(self, topic, key, value):
        self.sent.append((topic, key, json.loads(value)))

    def flush(self, timeout_s) -> None:
        pass

    def close(self, timeout_s) -> None:
        pass


@pytest.mark.parametrize("scores_topic", [None, "scores"])
def test_publisher_alerts_at_or_above_the_threshold_and_scores_the_rest(registry, scores_topic) -> None:
    from datetime import UTC, datetime

    from worker.app import new_metrics
    from worker.publish import Publisher

    sink, (metrics, _) = _RecordingSink(), new_metrics()
    model = registry.resolve("tiny-vae:1")
    items = [routed(image_message(np.zeros((28, 28), np.uint8), id=f"r{i}"), registry, offset=i)[1]
             for i in range(4)]  # fmt: skip
    t = model.manifest.threshold
    scores = np.array([t - 1.0, t, t * 3, 0.0])
    publisher = Publisher(sink, "alerts", "dead", scores_topic, metrics)
    assert publisher.outcomes(model, items, scores, datetime.now(UTC)) == 2
    alerts = [(key, value) for topic, key, value in sink.sent if topic == "alerts"]
    assert [key for key, _ in alerts] == [b"r1", b"r2"]
    assert [v["score"] for _, v in alerts] == [t, t * 3] and all(v["threshold"] == t for _, v in alerts)
    assert alerts[1][1]["source"] == {"topic": "in", "partition": 0, "offset": 2}
    scored = [value["record_id"] for topic, _, value in sink.sent if topic == "scores"]
    assert scored == ([] if scores_topic is None else ["r0", "r3"])


class _FetchingConsumer:
    """kafka-python's poll(): everything fetched so far (up to max_records), by partition."""

    def __init__(self, fetches: list[dict]) -> None:
        self.fetches, self.polls = fetches, []

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        self.polls.append(max_records)
        return self.fetches.pop(0) if self.fetches else {}


def test_kafka_python_source_empties_each_fetch_and_hands_it_out_in_max_records() -> None:
    from worker.settings import WorkerSettings
    from worker.transport_kafka_python import KafkaPythonSource

    first = {("in", 0): list(range(0, 5)), ("in", 1): list(range(100, 103))}
    consumer = _FetchingConsumer([first, {("in", 0): [5, 6]}])
    source = KafkaPythonSource(consumer, WorkerSettings(metrics_port=0))
    handed = [source.poll(10, 3) for _ in range(4)]
    assert handed == [[0, 1, 2], [3, 4, 100], [101, 102], [5, 6]]
    # kafka-python was asked for all it held, and again only once the first fetch was all handed out
    assert consumer.polls == [KafkaPythonSource.DRAIN, KafkaPythonSource.DRAIN]
    assert source.poll(10, 3) == [] and len(consumer.polls) == 3
