"""Exactly-once (worker/transaction.py) with stand-in clients: what goes into a transaction, what an
abort leaves, and the settings that refuse the mode. The real broker: test_worker_exactly_once_kafka.py."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import image_message
from tests.test_worker_cli import run_worker
from tests.test_worker_settings import problem
from tests.worker_fakes import RevokingSource, message
from worker.build import wire
from worker.health import Health
from worker.kafka.protocol import Message, ProducerFenced, TransactionFailed
from worker.metrics import new_metrics
from worker.settings import WorkerSettings
from worker.transaction import TransactionAborted, TransactionalCheckpoint, Transactions

EOS = {"processing_guarantee": "exactly-once", "transport": "confluent", "metrics_port": 0}


class Delivered:
    def __init__(self, exception: BaseException | None = None) -> None:
        self.is_done, self.exception = True, exception

    def succeeded(self) -> bool:
        return self.exception is None


class TransactionalFake:
    """A transactional producer that writes down every call: ("send", topic), ("begin",),
    ("offsets", {...}), ("commit",), ("abort",). `fail`: the call that raises, and what."""

    max_record_bytes = 1_000_000

    def __init__(self, refuse_outputs: bool = False, fail: tuple[str, Exception] | None = None) -> None:
        self.calls: list[tuple] = []
        self.refuse_outputs, self.fail = refuse_outputs, fail

    def _call(self, *call: object) -> None:
        self.calls.append(call)
        if self.fail and self.fail[0] == call[0]:
            raise self.fail[1]

    def prepare(self, topics) -> None:
        pass

    def send(self, topic, key, value) -> Delivered:
        self._call("send", topic)
        return Delivered(RuntimeError("MSG_SIZE_TOO_LARGE") if self.refuse_outputs else None)

    def flush(self, timeout_s) -> None:
        pass

    def close(self, timeout_s) -> None:
        self.calls.append(("close",))

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, offsets, metadata) -> None:
        assert metadata == "group-metadata"
        self._call("offsets", dict(offsets))

    def commit_transaction(self) -> None:
        self._call("commit")

    def abort_transaction(self) -> None:
        self._call("abort")


class GroupSource(RevokingSource):
    def group_metadata(self) -> object:
        return "group-metadata"


def checkpoint(sink: TransactionalFake) -> tuple[TransactionalCheckpoint, Transactions, GroupSource]:
    metrics, _ = new_metrics()
    producer, source = Transactions(sink, Health(), 60.0), GroupSource([])
    return TransactionalCheckpoint(source, producer, metrics, Health(), interval_ms=1000), producer, source


def test_outputs_and_the_offsets_past_every_record_handed_over_commit_in_one_transaction() -> None:
    sink = TransactionalFake()
    cp, producer, source = checkpoint(sink)
    assert cp.commit([], wait=False) and sink.calls == []  # nothing handed over: no transaction
    for o in range(5):
        cp.offsets.seen("in", 0, o)
    cp.offsets.seen("in", 1, 7)
    cp.expect(producer.send("alerts", b"k", b"{}"))  # the first output opens the transaction
    cp.expect(producer.send("scores", b"k", b"{}"))
    assert cp.commit([], wait=False)
    assert sink.calls == [("begin",), ("send", "alerts"), ("send", "scores"),
                          ("offsets", {("in", 0): 5, ("in", 1): 8}), ("commit",)]  # fmt: skip
    assert source.committed == []  # never the consumer's own commit
    sink.calls.clear()
    assert cp.commit([], wait=True) and sink.calls == []  # nothing new: nothing to commit
    cp.offsets.seen("in", 0, 5)  # a record held back by its kind (no output): its offset alone
    assert cp.commit([], wait=True)
    assert sink.calls == [("begin",), ("offsets", {("in", 0): 6}), ("commit",)]


def test_a_refused_output_aborts_the_transaction_and_nothing_is_committed_now_or_later() -> None:
    sink = TransactionalFake(refuse_outputs=True)
    cp, producer, _ = checkpoint(sink)
    cp.offsets.seen("in", 0, 0)
    cp.expect(producer.send("alerts", b"k", b"{}"))
    with pytest.raises(TransactionAborted, match=r"aborted .* 1 of 1 outputs were not acknowledged"):
        cp.commit([], wait=True)
    assert sink.calls == [("begin",), ("send", "alerts"), ("abort",)]
    assert cp.halted and not cp.commit([], wait=True) and not producer.open


def test_a_failed_commit_aborts_and_a_fenced_producer_stops_as_such() -> None:
    sink = TransactionalFake(fail=("commit", TransactionFailed("commit_transaction: _TIMED_OUT")))
    cp, producer, _ = checkpoint(sink)
    cp.offsets.seen("in", 0, 0)
    with pytest.raises(TransactionAborted, match="_TIMED_OUT"):
        cp.commit([], wait=True)
    assert sink.calls[-1] == ("abort",) and cp.halted

    sink = TransactionalFake(fail=("offsets", ProducerFenced("another producer took over")))
    cp, producer, _ = checkpoint(sink)
    cp.offsets.seen("in", 0, 0)
    with pytest.raises(ProducerFenced):
        cp.commit([], wait=True)
    assert ("commit",) not in sink.calls and cp.halted
    producer.close(1)  # the abort at close fails too (fenced): said at DEBUG only, the close goes on
    assert sink.calls[-2:] == [("abort",), ("close",)]


def test_a_transaction_that_cannot_open_stops_the_worker_as_an_abort() -> None:
    producer = Transactions(TransactionalFake(fail=("begin", TransactionFailed("begin_transaction: _STATE"))),
                            Health(), 60.0)
    with pytest.raises(TransactionAborted, match="could not be opened"):
        producer.send("alerts", None, b"{}")


def test_the_worker_scores_every_record_in_hand_before_a_transaction_commits(tiny_models) -> None:
    """A periodic commit with a batch still filling: the batch is scored and its outputs are sent
    first, so the offsets committed are one past it (the at-least-once commit would stay below it)."""
    raw = image_message(np.zeros((28, 28), np.uint8))
    messages = [message(raw, offset=o) for o in range(3)] + [Message("in", 0, 3, None, b"{bad", 0)]
    sink = TransactionalFake()
    metrics, _ = new_metrics()
    producer, source = Transactions(sink, Health(), 60.0), GroupSource(messages)
    s = WorkerSettings(**EOS, max_batch=64, max_wait_ms=60_000, scores_topic="scores")
    cp = TransactionalCheckpoint(source, producer, metrics, Health(), interval_ms=60_000)
    worker = wire(s, tiny_models, source, producer, metrics, Health(), checkpoint=cp)
    worker.consumer.subscribe(["in"], worker.on_assigned, worker.on_revoked)
    worker.step()  # 3 images wait in a batch; the dead letter is sent
    assert worker.batcher.open_batches() and [c[0] for c in sink.calls] == ["begin", "send"]
    assert worker.commit(wait=False)
    sends = [c[1] for c in sink.calls if c[0] == "send"]
    assert sorted(sends) == ["dead-letters", "scores", "scores", "scores"]
    assert sink.calls[-2:] == [("offsets", {("in", 0): 4}), ("commit",)]
    assert not worker.batcher.open_batches() and not worker.scoring.busy()
    worker.scoring.close()


def test_exactly_once_is_refused_with_kafka_python_naming_the_flags() -> None:
    line = problem(processing_guarantee="exactly-once")
    assert "--processing-guarantee / WORKER_PROCESSING_GUARANTEE exactly-once needs --transport / " \
           "WORKER_TRANSPORT confluent" in line and len(line.splitlines()) == 1  # fmt: skip
    done = run_worker("--processing-guarantee", "exactly-once", "--transport", "kafka-python")
    assert done.returncode == 2 and "needs --transport / WORKER_TRANSPORT confluent" in done.stderr


def test_the_transactional_id_defaults_to_the_group_the_host_and_a_slot(monkeypatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "node-7")
    monkeypatch.setattr("worker.settings.host_slot", lambda name: 3 if name == "g" else -1)
    assert WorkerSettings(**EOS, group_id="g").producer_transactional_id() == "g-node-7-3"
    assert WorkerSettings(**EOS, transactional_id="w-0").producer_transactional_id() == "w-0"


HOLD_A_SLOT = """
import sys, time
from pathlib import Path
from worker.identity import host_slot
print(host_slot("g", Path(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_workers_of_one_host_take_distinct_slots_and_a_restarted_one_takes_the_freed_slot(tmp_path) -> None:
    """Each process holds its slot until it dies (SIGKILL too): a second gets 1, a restart gets 0 back."""
    import subprocess
    import sys

    def hold(seconds: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", HOLD_A_SLOT, str(tmp_path), str(seconds)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip

    first = hold(600)
    assert first.stdout.readline().strip() == "0"
    second = hold(0)
    assert second.stdout.readline().strip() == "1"
    second.wait(30)
    first.kill()
    first.wait(30)
    again = hold(0)
    assert again.stdout.readline().strip() == "0"  # the killed one's slot, free again
    again.wait(30)


class FakeProducer:
    """confluent-kafka's Producer as far as the transactional sink calls it: each call raises the next
    of `errors` (None: succeeds)."""

    def __init__(self, *errors: object) -> None:
        self.errors, self.calls = list(errors), 0

    def commit_transaction(self, timeout) -> None:
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error

    def poll(self, timeout) -> int:
        return 0


def test_librdkafka_errors_are_retried_said_as_an_abort_or_as_fenced(monkeypatch) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from worker.kafka.confluent import ConfluentTransactionalSink

    monkeypatch.setattr("worker.kafka.confluent.time.sleep", lambda s: None)

    def sink(*errors: object) -> ConfluentTransactionalSink:
        return ConfluentTransactionalSink(FakeProducer(*errors), 1_000_000, 10.0, "g-host")

    retriable = KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))
    again = sink(retriable, retriable, None)
    again.commit_transaction()  # a coordinator moving: tried again
    assert again.producer.calls == 3
    abortable = KafkaError(KafkaError._TIMED_OUT, "x", retriable=True, txn_requires_abort=True)
    with pytest.raises(TransactionFailed, match="commit_transaction: _TIMED_OUT"):
        sink(KafkaException(abortable)).commit_transaction()
    with pytest.raises(ProducerFenced, match=r"'g-host'.*--transactional-id / WORKER_TRANSACTIONAL_ID"):
        sink(KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))).commit_transaction()
    # produce() after the fact says only _FATAL: the fatal error itself comes from error_cb.
    fenced = sink(KafkaException(KafkaError(KafkaError._FATAL, "fatal", fatal=True)))
    fenced.fatal.append(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    with pytest.raises(ProducerFenced):
        fenced.commit_transaction()


def test_settings_that_do_nothing_here_are_said_at_start() -> None:
    plain = WorkerSettings(metrics_port=0, transactional_id="w-0")
    assert any("--transactional-id / WORKER_TRANSACTIONAL_ID is ignored" in w for w in plain.start_warnings())
    assert WorkerSettings(**EOS).start_warnings() == []  # the defaults: nothing to say
    lowered = WorkerSettings(**EOS, delivery_timeout_ms=120_000, transaction_timeout_ms=30_000)
    assert lowered.output_timeout_ms() == 20_000
    assert [w for w in lowered.start_warnings() if "outputs wait at most 20 s" in w]
    assert WorkerSettings(**EOS, transactional_id="w-0").start_warnings() == []


def test_the_warning_for_a_transactional_id_without_exactly_once_is_in_the_workers_log(tmp_path) -> None:
    done = run_worker("--transactional-id", "w-0", "--bootstrap-servers", "127.0.0.1:1", "--kafka-wait-s",
                      "1", "--model-repository", str(tmp_path))  # fmt: skip
    assert "--transactional-id / WORKER_TRANSACTIONAL_ID is ignored" in done.stderr + done.stdout


def test_static_membership_reaches_both_clients_consumer_config(monkeypatch) -> None:
    """--group-instance-id is the consumer's group.instance.id, with either client."""
    import worker.kafka.confluent as confluent
    import worker.kafka.kafka_python as kafka_python

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def confluent_consumer(config: dict) -> None:
        seen["confluent"] = config.get("group.instance.id")
        raise Stop

    def python_consumer(**config: object) -> None:
        seen["kafka-python"] = config.get("group_instance_id")
        raise Stop

    monkeypatch.setattr(confluent, "Consumer", confluent_consumer)
    monkeypatch.setattr(confluent, "check_connection", lambda s: None)
    monkeypatch.setattr(kafka_python, "KafkaConsumer", python_consumer)
    monkeypatch.setattr(kafka_python, "check_connection", lambda s: None)
    for module, transport in ((confluent, "confluent"), (kafka_python, "kafka-python")):
        with pytest.raises(Stop):
            module.build(WorkerSettings(metrics_port=0, transport=transport, group_instance_id="worker-3"))
    assert seen == {"confluent": "worker-3", "kafka-python": "worker-3"}
