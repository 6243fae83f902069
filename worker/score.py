"""Score batches: one onnxruntime run per slice of at most --max-batch rows; the graph computes the score."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

from worker.batch import Batch
from worker.registry import LoadedModel


def score_batch(model: LoadedModel, inputs: np.ndarray, max_batch: int) -> np.ndarray:
    """Scores (float64, one per row) of `inputs` (n, *record_shape) float32."""
    input_name = model.manifest.input.name
    score_name = model.manifest.outputs["score"].name
    out = []
    for start in range(0, len(inputs), max_batch):
        [scores] = model.session.run([score_name], {input_name: inputs[start : start + max_batch]})
        out.append(scores)
    scores = np.concatenate(out).astype(np.float64)
    if scores.shape != (len(inputs),):
        raise ValueError(f"model {model.key} returned {scores.shape} scores for {len(inputs)} records")
    return scores


class ScoreStage:
    """Scores batches on a thread of its own, so consuming and decoding overlap with inference.

    onnxruntime releases the GIL while it runs, so the consume loop keeps going. At most
    `depth` batches wait, which bounds memory and keeps back-pressure on the consumer.
    The loop commits only below the lowest offset of any batch queued or being scored.
    """

    def __init__(self, work: Callable[[Batch], None], depth: int = 2) -> None:
        self._work = work
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._in_flight: list[Batch] = []
        self._idle = threading.Condition(self._lock)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="score", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        if self.error is not None:
            raise self.error
        with self._lock:
            self._in_flight.append(batch)
        self._queue.put(batch)  # blocks while `depth` batches wait: back-pressure

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self._work(batch)
            except BaseException as exc:  # surfaced to the loop by submit()/wait_idle()
                self.error = exc
            with self._lock:
                self._in_flight.remove(batch)
                self._idle.notify_all()

    def pending_offsets(self) -> dict[tuple[str, int], int]:
        """Lowest offset per partition of the batches not yet fully handed to the producer."""
        low: dict[tuple[str, int], int] = {}
        with self._lock:
            for batch in self._in_flight:
                for tp, offset in batch.low_offsets().items():
                    if offset < low.get(tp, offset + 1):
                        low[tp] = offset
        return low

    def wait_idle(self, timeout_s: float = 120.0) -> None:
        with self._lock:
            if not self._idle.wait_for(lambda: not self._in_flight, timeout=timeout_s):
                raise TimeoutError(f"scoring did not finish within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
