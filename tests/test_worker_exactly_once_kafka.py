"""Exactly-once (--processing-guarantee exactly-once) on the real broker, with workers as processes of
their own: a read_committed reader of the outputs sees every input exactly once through a SIGKILL and a
restart, and through a second worker joining mid-stream; a refused output aborts the transaction and
nothing is committed; a second worker with the same transactional.id fences the first."""

from __future__ import annotations

import collections
import functools
import json
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas import image_message
from tests.worker_harness import committed, end_offsets, produce, wait_for, worker_settings
from tooling.kafka import SteadyStream, create_topic
from tooling.kafka import producer as new_producer
from tooling.process import start_worker_process
from training.images.mnist import load_split
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

EOS = {"transport": "confluent", "processing_guarantee": "exactly-once"}


@functools.cache
def digits() -> np.ndarray:
    """MNIST test-set 1s, 4s (mostly score messages) and 5s (mostly alerts), in test-set order."""
    test = load_split("test")
    return test.images[np.isin(test.labels, (1, 4, 5))]


def images(n: int, prefix: str, start: int = 0) -> list[bytes]:
    pool = digits()
    return [image_message(pool[i % len(pool)], id=f"{prefix}/{i}") for i in range(start, start + n)]


def read_all(bootstrap: str, topic: str, isolation: str = "read_committed", timeout_s: float = 60) -> list:
    """Every message of `topic` a reader with `isolation` sees, read up to the end of each partition."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                       "isolation.level": isolation, "enable.auto.commit": False,
                       "fetch.message.max.bytes": 8 << 20})  # fmt: skip
    try:
        parts = list(reader.list_topics(topic, timeout=10).topics[topic].partitions)
        marks = {p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
        ends = {p: high for p, (low, high) in marks.items() if high > low}  # partitions with something
        reader.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out += [m for m in reader.consume(1000, timeout=0.5) if m.error() is None]
            positions = {
                tp.partition: tp.offset for tp in reader.position([TopicPartition(topic, p) for p in parts])
            }
            if all(
                positions.get(p, -1) >= end for p, end in ends.items()
            ):  # past data, commit and abort markers
                return out
        raise AssertionError(f"{topic} not read to its end within {timeout_s:.0f} s: {positions} of {ends}")
    finally:
        reader.close()


def output_ids(
    bootstrap: str, topics: dict[str, str], isolation: str = "read_committed"
) -> collections.Counter:
    """How often each input id has an output (alert or score message); dead letters count as 'dead'."""
    messages = [m for t in ("alerts", "scores", "dead") for m in read_all(bootstrap, topics[t], isolation)]
    return collections.Counter(json.loads(m.value()).get("record_id", "dead") for m in messages)


def start(settings: WorkerSettings, log: Path) -> tuple[subprocess.Popen, Path]:
    """A worker process whose output goes to `log` (read while it runs)."""
    settings = settings.model_copy(update={"metrics_port": 0})
    with log.open("w") as out:
        return start_worker_process(settings, stdout=out, stderr=subprocess.STDOUT, text=True), log


def stream_of(bootstrap: str, topic: str, prefix: str) -> SteadyStream:
    """Images produced on a thread of its own, 40 every 0.1 s, until stopped."""
    return SteadyStream(bootstrap, topic, lambda i: images(1, prefix, start=i)[0], 40)


def outputs_so_far(bootstrap: str, topics: dict[str, str]) -> int:
    """Outputs written so far, committed or not (end offsets count transaction markers too)."""
    return sum(sum(end_offsets(bootstrap, topics[t]).values()) for t in ("alerts", "scores"))


def all_committed(bootstrap: str, topics: dict[str, str]) -> bool:
    return committed(bootstrap, topics["group"], topics["input"]) == end_offsets(bootstrap, topics["input"])


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(90)
    finally:
        proc.kill()


@pytest.fixture
def topics(worker_topics) -> dict[str, str]:
    return worker_topics("eos")


def repository(tiny_bundle) -> Path:
    return tiny_bundle.folder.parent.parent


def test_sigkill_mid_stream_then_restart_gives_every_output_exactly_once(
    kafka_bootstrap, topics, tiny_bundle, tmp_path
) -> None:
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, **EOS, max_batch=16,
                               commit_interval_ms=300)  # fmt: skip
    stream = stream_of(kafka_bootstrap, topics["input"], "kill")
    proc, log = start(settings, tmp_path / "first.log")
    try:
        # Killed while records stream in, after its first transaction committed: most likely in the
        # middle of another, and in any case with records behind it.
        group, topic = topics["group"], topics["input"]
        assert wait_for(lambda: committed(kafka_bootstrap, group, topic), 120, every_s=0.05), log.read_text()
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 300, 120), log.read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        stream.stop(more=200)  # records after the kill too
    sent = range(stream.sent)
    before = committed(kafka_bootstrap, topics["group"], topics["input"])
    assert sum(before.values()) < len(sent), "the kill should have left work to redo"
    # The same group on the same host: the same transactional.id, which aborts the killed one's
    # open transaction when the restarted worker starts.
    restarted, log = start(settings, tmp_path / "restarted.log")
    try:
        assert wait_for(lambda: all_committed(kafka_bootstrap, topics), 180), log.read_text()
    finally:
        assert stop(restarted) == 0, log.read_text()
    assert "stopped cleanly" in log.read_text()
    seen = output_ids(kafka_bootstrap, topics)
    assert set(seen) == {f"kill/{i}" for i in range(len(sent))}  # none missing, no dead letter
    assert [i for i, n in seen.items() if n > 1] == []  # none twice
    written = sum(output_ids(kafka_bootstrap, topics, "read_uncommitted").values())
    print(f"outputs written: {written}, of which {written - len(sent)} in the killed worker's aborted "
          f"transaction; committed before the kill: {sum(before.values())} of {len(sent)}")  # fmt: skip


def test_a_second_worker_joining_mid_stream_gives_every_output_exactly_once(
    kafka_bootstrap, topics, tiny_bundle, tmp_path
) -> None:
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, **EOS, max_batch=16,
                               commit_interval_ms=300)  # fmt: skip
    # Two workers on one host: each its own transactional.id.
    first, first_log = start(settings.model_copy(update={"transactional_id": f"{topics['group']}-a"}),
                             tmp_path / "first.log")  # fmt: skip
    second = None
    producer = new_producer(kafka_bootstrap)
    sent = 0

    def send(n: int) -> None:
        nonlocal sent
        for m in images(n, "join", start=sent):
            producer.send(topics["input"], m)
        producer.flush()
        sent += n

    try:
        send(1000)
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 200, 120), first_log.read_text()
        second, second_log = start(settings.model_copy(update={"transactional_id": f"{topics['group']}-b"}),
                                   tmp_path / "second.log")  # fmt: skip
        # A stream goes on until the second worker has its partition, and a while after.
        deadline = time.monotonic() + 180
        while "assigned partitions: " + topics["input"] not in second_log.read_text():
            assert time.monotonic() < deadline and second.poll() is None, second_log.read_text()
            send(40)
            time.sleep(0.1)
        send(1000)
        assert wait_for(lambda: all_committed(kafka_bootstrap, topics), 180), second_log.read_text()
    finally:
        producer.close()
        codes = [stop(first)] + ([stop(second)] if second is not None else [])
    assert codes == [0, 0], first_log.read_text() + second_log.read_text()
    # The first worker gave up a partition (revoked: its transaction committed first) and kept one.
    assert first_log.read_text().count("assigned partitions: ") >= 2
    seen = output_ids(kafka_bootstrap, topics)
    assert set(seen) == {f"join/{i}" for i in range(sent)}
    assert [i for i, n in seen.items() if n > 1] == []
    print(f"{sent} records through a rebalance: each output once")


def test_a_refused_output_aborts_the_transaction_and_nothing_is_committed(
    kafka_bootstrap, topics, tiny_bundle, tmp_path
) -> None:
    # An alerts topic that refuses every alert (over its max.message.bytes): the broker says so.
    topics["alerts"] = create_topic(kafka_bootstrap, f"tiny-alerts-{uuid.uuid4().hex[:8]}", 1,
                                    {"max.message.bytes": "100"})  # fmt: skip
    # Random pixels are far from the digits: every one an alert, after 1s, 4s and 5s.
    rng = np.random.default_rng(0)
    noise = [
        image_message(rng.integers(0, 256, (28, 28), dtype=np.uint8), id=f"noise/{i}") for i in range(20)
    ]
    produce(kafka_bootstrap, topics["input"], [*images(40, "digit"), b"{not json", *noise])
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, **EOS)
    proc, log = start(settings, tmp_path / "worker.log")
    try:
        proc.wait(180)
    finally:
        proc.kill()
    out = log.read_text()
    assert proc.returncode == 1, out
    assert "transaction was aborted" in out and "without committing" in out, out
    assert committed(kafka_bootstrap, topics["group"], topics["input"]) == {}
    # The score messages and the dead letter were written, in the transaction that was aborted:
    # a read_committed reader sees none of them.
    assert output_ids(kafka_bootstrap, topics) == {}
    written = output_ids(kafka_bootstrap, topics, "read_uncommitted")
    print(f"written, then aborted: {dict(collections.Counter(k.split('/')[0] for k in written.elements()))}")


def test_a_second_worker_with_the_same_transactional_id_fences_the_first(
    kafka_bootstrap, topics, tiny_bundle, tmp_path
) -> None:
    """Two workers of one group given the same --transactional-id: the second's start fences the
    first, which stops with one line saying why; nothing is lost or repeated."""
    same = f"{topics['group']}-same"
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, **EOS, max_batch=16,
                               commit_interval_ms=300, transactional_id=same)  # fmt: skip
    produce(kafka_bootstrap, topics["input"], images(1000, "fence"))
    first, first_log = start(settings, tmp_path / "first.log")
    second = None
    try:
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 100, 120), first_log.read_text()
        second, second_log = start(settings, tmp_path / "second.log")
        # Once the second has fenced the first (at its start, before it joins the group), more records:
        # the first takes some in (it has partitions until the rebalance) and finds itself fenced.
        started = wait_for(lambda: "exactly-once: transactional.id" in second_log.read_text(), 120)
        assert started, second_log.read_text()
        produce(kafka_bootstrap, topics["input"], images(1000, "fence", start=1000))
        assert wait_for(lambda: first.poll() is not None, 180), first_log.read_text()
        assert wait_for(lambda: all_committed(kafka_bootstrap, topics), 180), second_log.read_text()
    finally:
        first.kill()
        code = stop(second) if second is not None else None
    out = first_log.read_text()
    assert first.returncode == 1, out
    fenced = [line for line in out.splitlines() if "another producer took over transactional.id" in line]
    assert len(fenced) == 1 and "--transactional-id / WORKER_TRANSACTIONAL_ID" in fenced[0], out
    assert "Traceback" not in out, out
    assert code == 0, second_log.read_text()
    seen = output_ids(kafka_bootstrap, topics)
    assert set(seen) == {f"fence/{i}" for i in range(2000)}
    assert [i for i, n in seen.items() if n > 1] == []


def test_two_workers_of_a_group_on_one_host_with_the_default_transactional_id_both_run(
    kafka_bootstrap, topics, tiny_bundle, tmp_path
) -> None:
    """The default transactional.id differs between two workers of one host (a slot each), so neither
    fences the other: both stay up and every output is there exactly once."""
    settings = worker_settings(kafka_bootstrap, repository(tiny_bundle), topics, **EOS, max_batch=16,
                               commit_interval_ms=300)  # fmt: skip
    produce(kafka_bootstrap, topics["input"], images(1000, "pair"))
    first, first_log = start(settings, tmp_path / "first.log")
    second = None
    try:
        assert wait_for(lambda: outputs_so_far(kafka_bootstrap, topics) >= 100, 120), first_log.read_text()
        second, second_log = start(settings, tmp_path / "second.log")
        assert wait_for(lambda: "exactly-once: transactional.id" in second_log.read_text(), 120)
        produce(kafka_bootstrap, topics["input"], images(1000, "pair", start=1000))
        assert wait_for(lambda: all_committed(kafka_bootstrap, topics), 180), second_log.read_text()
        assert first.poll() is None and second.poll() is None, first_log.read_text() + second_log.read_text()
    finally:
        codes = [stop(p) for p in (first, second) if p is not None]
    ids = [re.search(r"transactional.id (\S+);", log.read_text()).group(1) for log in (first_log, second_log)]
    assert ids[0] != ids[1] and ids[0].endswith("-0") and ids[1].endswith("-1"), ids
    assert codes == [0, 0], first_log.read_text() + second_log.read_text()
    seen = output_ids(kafka_bootstrap, topics)
    assert set(seen) == {f"pair/{i}" for i in range(2000)}
    assert [i for i, n in seen.items() if n > 1] == []
