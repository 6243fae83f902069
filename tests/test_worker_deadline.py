"""Client calls with the worker's own deadline (worker/deadline.py): a call that never returns cannot
freeze the worker, makes it not ready while it waits, gives way to SIGTERM, and ends in CallStuck;
exactly-once (worker/transaction.py) then leaves the producer alone. The real broker:
test_worker_exactly_once_kafka.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from schemas import image_message
from tests.test_worker_transaction import GroupSource, TransactionalFake
from tests.worker_fakes import message
from worker.deadline import CallStuck, call_with_deadline
from worker.health import Health
from worker.metrics import new_metrics
from worker.transaction import TransactionalCheckpoint, Transactions

NEVER = threading.Event()  # never set: a call waiting on it never returns


def test_a_call_that_returns_gives_its_value_or_its_error() -> None:
    health = Health()
    health.models_loaded = health.partitions_assigned = True
    assert call_with_deadline("x", lambda: 42, 5, health) == 42
    assert health.stuck_call is None and health.ready() == (True, "ready")
    with pytest.raises(ZeroDivisionError):
        call_with_deadline("commit_transaction", lambda: 1 / 0, 5, health)
    # not ready after a failed call (an abort and an exit follow), until one succeeds
    assert health.ready() == (False, "commit_transaction failed: division by zero")
    assert call_with_deadline("x", lambda: 42, 5, health) == 42 and health.ready() == (True, "ready")


def test_a_call_that_never_returns_ends_at_the_deadline_and_the_worker_is_not_ready_meanwhile() -> None:
    health = Health()
    health.models_loaded = health.partitions_assigned = True
    seen: list[tuple[bool, str]] = []

    def watch() -> None:  # readiness once the wait is said to be stuck
        while health.stuck_call is None:
            NEVER.wait(0.01)
        seen.append(health.ready())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with pytest.raises(CallStuck, match=r"commit_transaction did not return within 3 s"):
        call_with_deadline("commit_transaction", NEVER.wait, 3, health, stuck_after_s=0.3)
    watcher.join(5)
    assert seen == [(False, seen[0][1])] and seen[0][1].startswith("commit_transaction has not returned")


def test_a_stuck_call_gives_way_to_a_stop() -> None:
    health = Health()
    threading.Timer(0.5, lambda: setattr(health, "stopping", True)).start()
    with pytest.raises(CallStuck, match="told to stop while abort_transaction had not returned"):
        call_with_deadline("abort_transaction", NEVER.wait, 600, health, stuck_after_s=0.2)


def test_a_slow_call_that_returns_makes_the_worker_ready_again() -> None:
    health = Health()
    health.models_loaded = health.partitions_assigned = True
    slow = threading.Event()
    threading.Timer(0.8, slow.set).start()
    assert call_with_deadline("commit_transaction", lambda: slow.wait() and "done", 30, health,
                              stuck_after_s=0.2) == "done"  # fmt: skip
    assert health.stuck_call is None and health.ready() == (True, "ready")


class StuckSink(TransactionalFake):
    """A transactional producer whose commit never returns (librdkafka's, its coordinator gone)."""

    def commit_transaction(self) -> None:
        self._call("commit")
        NEVER.wait()


def test_a_stuck_commit_halts_exactly_once_and_the_producer_is_not_touched_again() -> None:
    sink = StuckSink()
    metrics, _ = new_metrics()
    health = Health()
    producer = Transactions(sink, health, deadline_s=1.0)
    cp = TransactionalCheckpoint(GroupSource([]), producer, metrics, health, interval_ms=1000)
    cp.offsets.seen("in", 0, 0)
    cp.expect(producer.send("alerts", b"k", b"{}"))
    with pytest.raises(CallStuck, match="commit_transaction did not return"):
        cp.commit([], wait=True)
    assert cp.halted and producer.stuck
    producer.abort()
    producer.close(1)
    assert [c[0] for c in sink.calls] == ["begin", "send", "offsets", "commit"]  # no abort, no close


def test_a_stop_while_a_commit_is_stuck_ends_the_run_at_once(tiny_models) -> None:
    """What SIGTERM does (its handler calls stop()): the run ends with CallStuck, not at the deadline,
    and the stuck producer is neither aborted nor closed."""
    from tests.test_worker_transaction import EOS
    from worker.build import wire
    from worker.settings import WorkerSettings

    raw = image_message(np.zeros((28, 28), np.uint8))
    sink = StuckSink()
    metrics, _ = new_metrics()
    health = Health()
    producer, source = Transactions(sink, health, deadline_s=600), GroupSource([message(raw, offset=0)])
    cp = TransactionalCheckpoint(source, producer, metrics, health, interval_ms=0)
    worker = wire(WorkerSettings(**EOS, max_batch=1), tiny_models, source, producer, metrics, health,
                    checkpoint=cp)  # fmt: skip
    threading.Timer(6.0, worker.stop).start()  # after STUCK_AFTER_S: the commit is stuck by then
    with pytest.raises(CallStuck, match="told to stop while commit_transaction had not returned"):
        worker.run()
    assert "abort" not in [c[0] for c in sink.calls] and ("close",) not in sink.calls
