"""The checkpoint (worker/checkpoint.py): flush, check every delivery, then commit below what waits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

from schemas import image_message
from tests.worker_fakes import RecordingSink, RevokingSource, decoded
from worker.batch import Batch
from worker.checkpoint import Checkpoint, DeliveryError, OffsetTracker, lowest_offsets
from worker.health import Health
from worker.kafka.protocol import CommitRejected
from worker.kinds import kinds_for
from worker.metrics import new_metrics
from worker.settings import WorkerSettings


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


@dataclass
class Delivered:
    is_done: bool = True
    exception: BaseException | None = None

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None


class RejectingSource(RevokingSource):
    def commit(self, offsets, wait=True) -> None:
        raise CommitRejected("the group is rebalancing")


def checkpoint(source=None) -> Checkpoint:
    metrics, _ = new_metrics()
    return Checkpoint(source or RevokingSource([]), RecordingSink(), metrics, Health(), interval_ms=1000)


def batch_of(tiny_models, offsets: list[int], partition: int = 0) -> Batch:
    kind = kinds_for(tiny_models, WorkerSettings(metrics_port=0))["tiny-vae:1"]
    batch = Batch(kind, capacity=len(offsets))
    raw = image_message(np.zeros((28, 28), np.uint8))
    for o in offsets:
        batch.append(decoded(raw, tiny_models, offset=o, partition=partition)[1])
    return batch


def test_lowest_offsets_is_the_lowest_per_partition_over_every_batch(tiny_models) -> None:
    batches = [batch_of(tiny_models, [7, 5, 9]), batch_of(tiny_models, [6, 2]),
               batch_of(tiny_models, [3], partition=1)]  # fmt: skip
    assert lowest_offsets(batches) == {("in", 0): 2, ("in", 1): 3}
    assert lowest_offsets([]) == {}


def test_commit_goes_up_to_the_first_waiting_record_once_every_output_is_acknowledged(tiny_models) -> None:
    source = RevokingSource([])
    cp = checkpoint(source)
    for o in range(10):
        cp.offsets.seen("in", 0, o)
    cp.expect(Delivered())
    assert cp.commit([batch_of(tiny_models, [8, 6])], wait=False)
    assert source.committed == [{("in", 0): 6}]
    assert cp.commit([], wait=True) and source.committed[-1] == {("in", 0): 10}


def test_a_lost_output_commits_nothing_now_or_later(tiny_models) -> None:
    source = RevokingSource([])
    cp = checkpoint(source)
    cp.offsets.seen("in", 0, 0)
    cp.expect(Delivered(exception=RuntimeError("MESSAGE_TOO_LARGE")))
    with pytest.raises(DeliveryError, match="1 of 1 outputs were not acknowledged: MESSAGE_TOO_LARGE"):
        cp.commit([], wait=True)
    assert cp.halted and not cp.commit([], wait=True)
    assert source.committed == []


class AcknowledgedLater(RecordingSink):
    """A broker that acknowledges nothing for `stalls` flushes (an outage, an ISR too small)."""

    def __init__(self, deliveries: list[Delivered], stalls: int, seen: list) -> None:
        super().__init__()
        self.deliveries, self.stalls, self.seen = deliveries, stalls, seen
        self.health: Health | None = None

    def flush(self, timeout_s) -> None:
        self.seen.append(self.health.ready())
        self.stalls -= 1
        if self.stalls < 0:
            for d in self.deliveries:
                d.is_done = True


def test_outputs_the_broker_holds_back_are_waited_for_said_and_shown_to_probes(monkeypatch, caplog) -> None:
    monkeypatch.setattr("worker.checkpoint.REPORT_S", 0.0)
    monkeypatch.setattr("worker.checkpoint.STALL_S", 0.0)  # this broker answers each flush at once
    deliveries, seen = [Delivered(is_done=False) for _ in range(3)], []
    sink = AcknowledgedLater(deliveries, stalls=3, seen=seen)
    sink.complaint = "NotEnoughReplicasError: retrying"
    metrics, _ = new_metrics()
    health = sink.health = Health()
    health.models_loaded = health.partitions_assigned = True
    source = RevokingSource([])
    cp = Checkpoint(source, sink, metrics, health, interval_ms=1000, delivery_timeout_ms=60_000)
    cp.offsets.seen("in", 0, 4)
    for d in deliveries:
        cp.expect(d)
    with caplog.at_level(logging.WARNING, logger="worker.checkpoint"):
        assert cp.commit([], wait=True)
    assert seen[0] == (True, "ready")  # the first flush: not stalled yet
    assert seen[1][0] is False and "outputs not acknowledged" in seen[1][1]
    assert health.ready() == (True, "ready") and source.committed == [{("in", 0): 5}]
    stalls = [r.getMessage() for r in caplog.records if "outputs stalled" in r.getMessage()]
    assert stalls and "3 not yet acknowledged" in stalls[0] and "giving up in" in stalls[0]
    assert "NotEnoughReplicasError" in stalls[0]  # what the client last said about sending


def test_outputs_never_acknowledged_give_up_at_the_delivery_timeout(monkeypatch) -> None:
    monkeypatch.setattr("worker.checkpoint.STALL_S", 0.0)
    cp = checkpoint()
    cp.delivery_timeout_s = -9.9  # the deadline (timeout + 10 s) has passed: give up after one flush
    cp.offsets.seen("in", 0, 0)
    cp.expect(Delivered(is_done=False))
    with pytest.raises(DeliveryError, match="no acknowledgement before the timeout"):
        cp.commit([], wait=True)
    assert cp.halted


def test_a_rejected_commit_is_reported_not_raised(caplog) -> None:
    cp = checkpoint(RejectingSource([]))
    cp.offsets.seen("in", 0, 0)
    assert cp.commit([], wait=True) is False
    assert "commit skipped (the group is rebalancing)" in caplog.text
