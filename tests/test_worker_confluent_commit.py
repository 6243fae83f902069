"""librdkafka's commit errors that only say the group or its coordinator is busy or away are a
skipped commit (CommitRejected: the next commit, or the partitions' next owner, covers it), never a
stop; others are raised."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from worker.kafka.confluent import ConfluentSource
from worker.kafka.protocol import CommitRejected


class FailingConsumer:
    def __init__(self, code: int) -> None:
        self.code = code

    def commit(self, offsets, asynchronous):
        raise KafkaException(KafkaError(self.code))


def source(code: int) -> ConfluentSource:
    s = ConfluentSource.__new__(ConfluentSource)
    s.consumer = FailingConsumer(code)
    return s


@pytest.mark.parametrize("code", [
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,  # seen in make chaos (leader-kill) during a revocation
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._WAIT_COORD,
])  # fmt: skip
def test_a_busy_or_absent_coordinator_skips_the_commit(code: int) -> None:
    with pytest.raises(CommitRejected):
        source(code).commit({("in", 0): 5}, wait=True)


def test_other_commit_errors_are_raised() -> None:
    with pytest.raises(KafkaException):
        source(KafkaError.TOPIC_AUTHORIZATION_FAILED).commit({("in", 0): 5}, wait=True)
