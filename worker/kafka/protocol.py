"""What the worker needs from a Kafka client, and what every client says the same way: the message,
source and sink protocols, the start-up and commit errors, the commit timeout.

The backends (`kafka_python.py`, `confluent.py`) import this module; it imports none of them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from worker.settings import WorkerSettings

log = logging.getLogger("worker")

Partitions = list[tuple[str, int]]


class StartupError(RuntimeError):
    pass


class KafkaConfigError(StartupError):
    """The broker answered, but the worker's security settings do not fit its listener (credentials,
    protocol, TLS trust): a restart will not help, the configuration must change. Exits 2."""


class BrokerUnreachable(StartupError):
    """No broker answered at all: it may be down or the address wrong; kept apart from KafkaConfigError
    because waiting for the broker can help here."""


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
    def topics(self) -> set[str]: ...
    def create_topics(self, names: list[str]) -> None: ...
    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        """Each topic's configuration as the broker reports it, name to value (max.message.bytes,
        compression.type, ...); topics it cannot tell are left out."""
        ...

    def close(self) -> None: ...


class OutputRefused(ValueError):
    """The client refused one output for a reason of its own (over its size limit): that record
    becomes a dead letter; the stream goes on."""


class Sink(Protocol):
    max_record_bytes: int  # the largest key + value the client itself sends (its request limit)

    def prepare(self, topics: list[str]) -> None:
        """Fetch the topics' metadata before the first send, which would otherwise wait for it (the
        first outputs of a run came out about 140 ms late: the p99 of the latency bench)."""
        ...

    def send(self, topic: str, key: bytes | None, value: bytes) -> Delivery:
        """Hand one output to the client; raises OutputRefused for one it will not take."""
        ...

    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float) -> None: ...

    def last_error(self) -> str | None:
        """What the client last complained of while sending (a broker's error name), if anything."""
        ...


class ProducerFenced(RuntimeError):
    """Another producer with this worker's transactional.id started (a restart of this worker, or a
    second worker given the same id): this one must stop at once, committing nothing."""


class TransactionFailed(RuntimeError):
    """A transaction could not be committed (or aborted); the checkpoint aborts it."""


class TransactionalSource(Source, Protocol):
    def group_metadata(self) -> object:
        """The consumer's group metadata (group, generation, member: KIP-447), for the transaction."""
        ...


class TransactionalSink(Sink, Protocol):
    """A producer that writes in transactions (exactly-once: worker/transaction.py). Every method raises
    ProducerFenced once the producer is fenced, TransactionFailed for any other failure."""

    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(self, offsets: dict[tuple[str, int], int], metadata: object) -> None: ...
    def commit_transaction(self) -> None: ...
    def abort_transaction(self) -> None: ...


def unreachable(s: WorkerSettings, detail: object) -> BrokerUnreachable:
    unresolved = unresolved_hosts(s.bootstrap_servers)
    if unresolved:
        names = ", ".join(f"{host!r} ({why})" for host, why in unresolved)
        return BrokerUnreachable(
            f"cannot reach Kafka at {s.bootstrap_servers}: the host name {names} does not resolve; check "
            "the spelling in --bootstrap-servers / WORKER_BOOTSTRAP_SERVERS, or this machine's DNS"
        )
    return BrokerUnreachable(
        f"cannot reach Kafka at {s.bootstrap_servers} ({detail}); check --bootstrap-servers / "
        "WORKER_BOOTSTRAP_SERVERS and that the broker is up ('make kafka-up' starts a local one)"
    )


def unresolved_hosts(bootstrap_servers: str) -> list[tuple[str, str]]:
    """The bootstrap hosts whose names do not resolve, each with the resolver's words."""
    out = []
    for server in bootstrap_servers.split(","):
        host = server.strip().rsplit(":", 1)[0].strip("[]")
        if not host:
            continue
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            out.append((host, exc.strerror or str(exc)))
        except OSError:  # another failure than the name: not what this is about
            continue
    return out


@dataclass(slots=True)
class Message:
    """A consumed message, for clients whose own message type has methods instead of fields."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    # Set when the client could not parse the record (key and value are what it had read, if any):
    # the decode stage dead-letters it with this text.
    unreadable: str | None = None
