"""Which input offsets may be committed: everything handled, below anything still waiting in a batch."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}  # one past the highest offset handed to the pipeline
        self._committed: dict[tuple[str, int], int] = {}

    def seen(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1

    def committable(self, waiting: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets to commit: per partition, the lowest offset still waiting, else one past the last seen.

        Call only after the outputs of everything handled so far are acknowledged.
        """
        out = {}
        for tp, nxt in self._next.items():
            position = min(nxt, waiting.get(tp, nxt))
            if position > self._committed.get(tp, -1):
                out[TopicPartition(*tp)] = OffsetAndMetadata(position, "", -1)
        return out

    def committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, meta in offsets.items():
            self._committed[(tp.topic, tp.partition)] = meta.offset

    def forget(self, partitions: list[TopicPartition]) -> None:
        """A revoked partition: its next owner starts from the committed offset."""
        for tp in partitions:
            self._next.pop((tp.topic, tp.partition), None)
            self._committed.pop((tp.topic, tp.partition), None)
