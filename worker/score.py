"""The score stage: one onnxruntime call per slice of at most --max-batch rows, on a thread of its own;
the graph computes the score.

Three ways to make that call, one per model (`scorer_for`, --io-binding and --cuda-graphs):

- `RunScorer`: plain `session.run()`; onnxruntime allocates the output of every call.
- `BoundScorer`: IO binding. The input is the batch's own rows, bound where they lie (filled one by
  one by the batch stage as records arrive, one array per batch, so two batches in flight never share
  one), and the scores are written into a buffer preallocated for --max-batch rows and copied out once.
  On a GPU onnxruntime makes one copy to the device and one back per call, and allocates nothing per
  record; on the CPU nothing is copied in at all.
- `GraphScorer`: a CUDA graph (--cuda-graphs) replays the captured kernels on fixed device buffers of
  --max-batch rows: each slice is copied into the padded host buffer, then to the device, run, and its
  scores read back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort

from worker.batch import Batch
from worker.serving.device import CUDA, pin_host_memory
from worker.serving.registry import LoadedModel, uses_cuda_graph

log = logging.getLogger(__name__)

IoBinding = Literal["auto", "on", "off"]


def score_batch(model: LoadedModel, inputs: np.ndarray, max_batch: int) -> np.ndarray:
    """Scores (float64, one per row) of `inputs` (n, *record_shape) float32, through plain run()."""
    return RunScorer(model, max_batch).score(inputs)


class Scorer(Protocol):
    model: LoadedModel

    def score(self, inputs: np.ndarray) -> np.ndarray:
        """Scores (float64, one per row) of `inputs` (n, *record_shape) float32, in slices of --max-batch."""
        ...

    def score_and_map(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The scores, and the anomaly maps if this scorer reads them (else None)."""
        ...


def _checked(model: LoadedModel, scores: np.ndarray, n: int) -> np.ndarray:
    if scores.shape != (n,):
        raise ValueError(f"model {model.key} returned {scores.shape} scores for {n} records")
    return scores


class RunScorer:
    """Plain session.run() per slice. The slice loop is shared: the other scorers differ only in
    `_run`, how one slice of at most --max-batch rows is run. With `explain` and a graph that has
    an explaining output (LoadedModel.explain_output), each slice's comes back too: an image's
    anomaly map (a copy of n x map cells, a few percent of the scores' own cost: worker/explain.py
    reads them for alerts only), or a metric window's reconstructed last point (one value each)."""

    def __init__(self, model: LoadedModel, max_batch: int, explain: bool = False) -> None:
        self.model, self.max_batch = model, max_batch
        self.input_name = model.manifest.input.name
        self.score_name = model.manifest.outputs["score"].name
        spec = model.explain_output if explain else None
        self.map_name = spec.name if spec is not None else None
        self.map_shape = tuple(spec.shape) if spec is not None else ()

    def score(self, inputs: np.ndarray) -> np.ndarray:
        return self.score_and_map(inputs)[0]

    def score_and_map(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (float64) and, if this scorer reads them, anomaly maps (float32, n x map shape)."""
        scores = np.empty(len(inputs), dtype=np.float64)
        maps = np.empty((len(inputs), *self.map_shape), np.float32) if self.map_name else None
        for start in range(0, len(inputs), self.max_batch):
            x = inputs[start : start + self.max_batch]
            got, got_maps = self._run(x)
            scores[start : start + len(x)] = _checked(self.model, got, len(x))
            if maps is not None:
                maps[start : start + len(x)] = got_maps
        return scores, maps

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.map_name is None:
            [scores] = self.model.session.run([self.score_name], {self.input_name: x})
            return scores, None
        scores, maps = self.model.session.run([self.score_name, self.map_name], {self.input_name: x})
        return scores, maps


class BoundScorer(RunScorer):
    """IO binding: the input bound in place (host memory; onnxruntime copies it to the device once per
    call), the scores (and maps) written straight into host buffers preallocated for --max-batch rows
    (one copy back per call). One per model, used by the scoring thread only; the buffers are copied
    out before the next call, so no batch ever sees another's scores."""

    def __init__(self, model: LoadedModel, max_batch: int, explain: bool = False) -> None:
        super().__init__(model, max_batch, explain)
        self.binding = model.session.io_binding()
        self.out = np.empty(max_batch, dtype=np.float32)
        self.map_out = np.empty((max_batch, *self.map_shape), np.float32) if self.map_name else None
        self._out_rows = 0  # rows the outputs are bound for: rebound only when a slice's size changes

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = len(x)
        self.binding.bind_cpu_input(self.input_name, x)  # no copy: x's own memory
        if n != self._out_rows:
            self.binding.bind_output(self.score_name, "cpu", 0, np.float32, (n,), self.out.ctypes.data)
            if self.map_out is not None:
                self.binding.bind_output(self.map_name, "cpu", 0, np.float32, (n, *self.map_shape),
                                         self.map_out.ctypes.data)  # fmt: skip
            self._out_rows = n
        self.model.session.run_with_iobinding(self.binding)
        return self.out[:n], (self.map_out[:n] if self.map_out is not None else None)


class GraphScorer(RunScorer):
    """A CUDA graph (--cuda-graphs): fixed device buffers of --max-batch rows, bound once and captured
    at the first runs; a short slice is padded (the padding's scores are dropped)."""

    WARM_RUNS = 3  # onnxruntime runs a graph's first call(s) normally, then captures, then replays

    def __init__(self, model: LoadedModel, max_batch: int, device_id: int = 0, explain: bool = False) -> None:
        super().__init__(model, max_batch, explain)
        self.host = np.zeros((max_batch, *model.record_shape), dtype=np.float32)
        pin_host_memory(self.host)  # the buffer every slice is copied to the device from
        self.x = ort.OrtValue.ortvalue_from_numpy(self.host, "cuda", device_id)
        self.y = ort.OrtValue.ortvalue_from_shape_and_type((max_batch,), np.float32, "cuda", device_id)
        self.binding = model.session.io_binding()
        self.binding.bind_ortvalue_input(self.input_name, self.x)
        self.binding.bind_ortvalue_output(self.score_name, self.y)
        self.maps = None
        if self.map_name:
            shape = (max_batch, *self.map_shape)
            self.maps = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", device_id)
            self.binding.bind_ortvalue_output(self.map_name, self.maps)
        for _ in range(self.WARM_RUNS):
            model.session.run_with_iobinding(self.binding)
        if not np.isfinite(self.y.numpy()).all():
            raise ValueError(f"model {model.key}: the CUDA graph's warm-up gave non-finite scores")

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(x)
        self.host[:n] = x  # rows beyond n keep older data: their scores are not read
        self.x.update_inplace(self.host)  # the one copy to the device
        self.model.session.run_with_iobinding(self.binding)
        maps = self.maps.numpy()[:n] if self.maps is not None else None
        return self.y.numpy()[:n], maps  # the copies back


class BrokenScorer:
    """A model whose scorer could not be made (a CUDA graph's warm-up failed): each of its batches
    fails with that error, without making the scorer again for every batch."""

    def __init__(self, model: LoadedModel, error: Exception) -> None:
        self.model, self.error = model, error

    def score(self, inputs: np.ndarray) -> np.ndarray:
        raise self.error

    def score_and_map(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise self.error


def scorer_for(
    model: LoadedModel, max_batch: int, io_binding: IoBinding = "auto", explain: bool = False
) -> Scorer:
    """The way to score `model`: a CUDA graph if its session runs one, else IO binding unless
    --io-binding is off (auto: on with CUDA, and on the CPU too, where it measured at least as fast as
    run(): docs/results.md, IO binding), else run()."""
    if uses_cuda_graph(model):
        if io_binding == "off":
            log.warning("%s: --cuda-graphs needs IO binding: --io-binding off is overridden", model.key)
        device_id = int(model.session.get_provider_options()[CUDA].get("device_id", 0))
        return GraphScorer(model, max_batch, device_id, explain)
    if io_binding in ("on", "auto"):
        return BoundScorer(model, max_batch, explain)
    return RunScorer(model, max_batch, explain)


@dataclass
class Scored:
    """A batch back from the scoring thread: its scores, or the exception the model raised."""

    batch: Batch
    scores: np.ndarray | None
    error: Exception | None
    seconds: float
    done_at: float = 0.0  # Unix time the scores were ready, for the loop to take back
    maps: np.ndarray | None = None  # the records' anomaly maps, where the scorer reads them


class ScoreStage:
    """Runs inference on a thread of its own; everything else stays on the loop's thread.

    onnxruntime releases the GIL while it runs, so inference overlaps consuming, decoding
    and publishing, and the scoring thread needs the GIL only to pick up and hand back a
    batch. At most `depth` batches wait (memory bound, back-pressure on the consumer). A
    batch counts as in flight until the loop has published its outputs (`finish`), and the
    loop commits only below the lowest offset in flight.
    """

    def __init__(
        self, max_batch: int, depth: int = 2, io_binding: IoBinding = "auto", explain: bool = False
    ) -> None:
        self.max_batch, self.io_binding, self.explain = max_batch, io_binding, explain
        self._scorers: dict[str, Scorer] = {}  # by model name: the version in service (scoring thread only)
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=depth)
        self._results: queue.Queue[Scored] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: list[Batch] = []
        self._thread = threading.Thread(target=self._run, name="score", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        batch.seal()
        batch.submitted_at = time.time()
        with self._lock:
            self._in_flight.append(batch)
        self._queue.put(batch)  # blocks while `depth` batches wait: back-pressure

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            t0 = time.perf_counter()
            try:
                scores, maps = self.scorer(batch.model).score_and_map(batch.inputs())
                result = Scored(batch, scores, None, 0.0, maps=maps)
            except Exception as exc:  # a model that raises must not stop the stream or lose records
                result = Scored(batch, None, exc, 0.0)
            result.seconds = time.perf_counter() - t0
            result.done_at = time.time()
            self._results.put(result)

    def scorer(self, model: LoadedModel) -> Scorer:
        """The model's scorer, made at its first batch; a new version's replaces the old one's (its
        batches are all scored by then: the scoring thread keeps order), letting its session go."""
        name = model.manifest.name
        scorer = self._scorers.get(name)
        if scorer is None or scorer.model is not model:
            try:
                scorer = scorer_for(model, self.max_batch, self.io_binding, self.explain)
            except Exception as exc:
                log.error("%s: could not make its scorer; its records are dead-lettered: %s", model.key, exc)
                scorer = BrokenScorer(model, exc)
            self._scorers[name] = scorer
        return scorer

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
        """The loop has handed this batch's outputs to the producer: its row buffer may serve another."""
        with self._lock:
            self._in_flight.remove(batch)
        batch.release()

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
