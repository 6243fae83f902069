"""Which input offsets may be committed: everything handled, below anything still waiting in a batch."""

from __future__ import annotations


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}  # one past the highest offset handed to the pipeline
        self._committed: dict[tuple[str, int], int] = {}

    def seen(self, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1

    def position(self, topic: str, partition: int) -> int | None:
        """One past the last offset handed to the pipeline, if any was."""
        return self._next.get((topic, partition))

    def committable(
        self, waiting: dict[tuple[str, int], int], again: bool = False
    ) -> dict[tuple[str, int], int]:
        """Offsets to commit: per partition, the lowest offset still waiting, else one past the last seen.

        Only those past the last commit, unless `again` (an asynchronous commit may have failed).
        Call only after the outputs of everything handled so far are acknowledged.
        """
        out = {}
        for tp, nxt in self._next.items():
            position = min(nxt, waiting.get(tp, nxt))
            if position > self._committed.get(tp, -1) or again:
                out[tp] = position
        return out

    def committed(self, offsets: dict[tuple[str, int], int]) -> None:
        self._committed.update(offsets)

    def keep_only(self, partitions: set[tuple[str, int]]) -> None:
        """After a rebalance: forget partitions now owned by another worker."""
        for tp in [tp for tp in self._next if tp not in partitions]:
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
