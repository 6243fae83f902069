"""The Kafka clients behind the worker, behind one small interface: kafka-python (the default) or
confluent-kafka (librdkafka, `--transport confluent`).

The worker needs little from a client: subscribe with rebalance callbacks (both libraries run
them inside poll, on the loop's thread), poll a batch of messages, commit exact offsets
synchronously, read high watermarks for the lag metric, and produce with a delivery report
it can check after a flush. Messages from either side carry `topic`, `partition`, `offset`,
`key`, `value` and `timestamp` (ms), so the stages downstream do not know which client read them.

Why two: kafka-python is pure Python, and on a 2-core machine its fetch parsing and its
producer's sender thread take GIL time from decoding and publishing; librdkafka does that
work in C threads (see the README's benchmark).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from worker.settings import WorkerSettings

log = logging.getLogger("worker")

Partitions = list[tuple[str, int]]


class StartupError(RuntimeError):
    pass


# A commit normally answers in milliseconds; one that cannot reach the group coordinator gives up
# after this, so a worker told to stop while its broker is away still exits (kafka-python would
# wait forever). Its records are read again from the last commit.
COMMIT_TIMEOUT_S = 15.0


def log_failed_commit(error: object) -> None:
    """What both clients say when an asynchronous commit comes back failed."""
    log.warning("a commit failed (%s); the next commit covers its records, or they are read again", error)


class CommitRejected(RuntimeError):
    """The commit did not happen: the group is rebalancing, or the coordinator could not be reached
    within COMMIT_TIMEOUT_S. The next commit, or the next owner of the partitions, covers its records."""


class Consumed(Protocol):
    """What the stages read from a consumed message (kafka-python's ConsumerRecord, or Message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class Delivery(Protocol):
    is_done: bool
    exception: BaseException | None

    def succeeded(self) -> bool: ...


class Source(Protocol):
    def subscribe(
        self,
        topics: list[str],
        on_assigned: Callable[[Partitions], None],
        on_revoked: Callable[[Partitions], None],
    ) -> None: ...
    def poll(self, timeout_ms: int, max_records: int) -> list: ...
    def commit(self, offsets: dict[tuple[str, int], int], wait: bool = True) -> None:
        """Commit exact offsets; wait=False sends the commit and returns (a failure is logged: the
        next commit covers those records, or they are read again)."""
        ...

    def assignment(self) -> set[tuple[str, int]]: ...
    def highwater(self, topic: str, partition: int) -> int | None: ...
    def topics(self) -> set[str]: ...
    def create_topics(self, names: list[str]) -> None: ...
    def close(self) -> None: ...


class Sink(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> Delivery: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float) -> None: ...


def build_clients(s: WorkerSettings) -> tuple[Source, Sink]:
    if s.transport == "confluent":
        from worker.transport_confluent import build

        return build(s)
    from worker.transport_kafka_python import build

    return build(s)


def unreachable(s: WorkerSettings, detail: object) -> StartupError:
    return StartupError(
        f"cannot reach Kafka at {s.bootstrap_servers} ({detail}); check --bootstrap-servers / "
        "WORKER_BOOTSTRAP_SERVERS and that the broker is up ('make kafka-up' starts a local one)"
    )


@dataclass(slots=True)
class Message:
    """A consumed message, for clients whose own message type has methods instead of fields."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def check_topics(s: WorkerSettings, source: Source) -> None:
    """Input topics must exist; missing output topics are created (or the error says how)."""
    existing = source.topics()
    missing_inputs = [t for t in s.topics if t not in existing]
    if missing_inputs:
        raise StartupError(
            f"input topic(s) {', '.join(missing_inputs)} do not exist on {s.bootstrap_servers}; create them "
            "or fix --input-topics / WORKER_INPUT_TOPICS"
        )
    outputs = [t for t in (s.alerts_topic, s.dead_letter_topic, s.scores_topic) if t and t not in existing]
    if not outputs:
        return
    try:
        source.create_topics(outputs)
        log.info("created output topic(s) %s", ", ".join(outputs))
    except Exception as exc:  # each client raises its own error types
        if "TOPIC_ALREADY_EXISTS" in str(exc).upper() or "TopicAlreadyExists" in type(exc).__name__:
            return
        raise StartupError(
            f"output topic(s) {', '.join(outputs)} do not exist and could not be created ({exc}); "
            "create them or point --alerts-topic / --dead-letter-topic / --scores-topic elsewhere"
        ) from None
