"""The score stage: one onnxruntime run per slice of at most --max-batch rows, on a thread of its own;
the graph computes the score."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

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


@dataclass
class Scored:
    """A batch back from the scoring thread: its scores, or the exception the model raised."""

    batch: Batch
    scores: np.ndarray | None
    error: Exception | None
    seconds: float


class ScoreStage:
    """Runs inference on a thread of its own; everything else stays on the loop's thread.

    onnxruntime releases the GIL while it runs, so inference overlaps consuming, decoding
    and publishing, and the scoring thread needs the GIL only to pick up and hand back a
    batch. At most `depth` batches wait (memory bound, back-pressure on the consumer). A
    batch counts as in flight until the loop has published its outputs (`finish`), and the
    loop commits only below the lowest offset in flight.
    """

    def __init__(self, max_batch: int, depth: int = 2) -> None:
        self.max_batch = max_batch
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=depth)
        self._results: queue.Queue[Scored] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: list[Batch] = []
        self._thread = threading.Thread(target=self._run, name="score", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        with self._lock:
            self._in_flight.append(batch)
        self._queue.put(batch)  # blocks while `depth` batches wait: back-pressure

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            t0 = time.perf_counter()
            try:
                result = Scored(batch, score_batch(batch.model, batch.inputs(), self.max_batch), None, 0.0)
            except Exception as exc:  # a model that raises must not stop the stream or lose records
                result = Scored(batch, None, exc, 0.0)
            result.seconds = time.perf_counter() - t0
            self._results.put(result)

    def completed(self, wait_s: float = 0.0) -> list[Scored]:
        """Batches scored so far; waits up to `wait_s` for the first one if none is ready."""
        out = []
        try:
            out.append(self._results.get(timeout=wait_s) if wait_s > 0 else self._results.get_nowait())
            while True:
                out.append(self._results.get_nowait())
        except queue.Empty:
            return out

    def finish(self, batch: Batch) -> None:
        """The loop has handed this batch's outputs to the producer."""
        with self._lock:
            self._in_flight.remove(batch)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._in_flight)

    def in_flight(self) -> list[Batch]:
        """Batches whose outputs are not yet with the producer: the commit must stay below their records."""
        with self._lock:
            return list(self._in_flight)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
