"""The Kafka clients the worker can use, with what each can do: the one table that --transport,
the client factory, the lag probe, exactly-once and the unpacking check read."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, get_args

TransportName = Literal["kafka-python", "confluent"]


@dataclass(frozen=True)
class Transport:
    module: str  # worker.kafka.<module>: `build(settings)` gives its (Source, Sink)
    offsets: str  # the module's class the lag probe asks for end offsets and commits
    transactions: bool  # transactions fenced by the group's generation (KIP-447): exactly-once
    bounded_unpacking: bool  # it bounds what one compressed batch may unpack to

    def load(self) -> ModuleType:
        """The client's module, imported now (confluent-kafka is an optional extra)."""
        return importlib.import_module(self.module)


TRANSPORTS: dict[str, Transport] = {
    # kafka-python 2.3 sends a transaction's offsets with the group id alone (TxnOffsetCommit v2): a
    # worker that lost its partitions could still commit them. It unpacks through worker/kafka/unpack.py.
    "kafka-python": Transport("worker.kafka.kafka_python", "KafkaPythonOffsets", transactions=False,
                              bounded_unpacking=True),
    # librdkafka unpacks gzip, lz4 and snappy batches whole, with no limit a client can set.
    "confluent": Transport("worker.kafka.confluent", "ConfluentOffsets", transactions=True,
                           bounded_unpacking=False),
}
assert set(TRANSPORTS) == set(get_args(TransportName)), "one entry per --transport choice"
