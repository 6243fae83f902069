"""The score stage (worker/score.py): one onnxruntime call per slice of at most --max-batch rows, through
run() or IO binding, the same scores either way."""

from __future__ import annotations

import numpy as np
import pytest

from tooling.metric_bundles import write_last_point_bundle
from worker.batch import Batch, Batcher, Item
from worker.score import BoundScorer, RunScorer, ScoreStage, score_batch, scorer_for
from worker.serving.device import CPU, CUDA
from worker.serving.registry import load_bundle


def test_score_batch_slices_to_max_batch_and_matches_one_run(tiny_models) -> None:
    model = tiny_models.resolve(None)
    x = np.random.default_rng(0).random((70, 28, 28), dtype=np.float32)
    sliced = score_batch(model, x, max_batch=16)
    whole = score_batch(model, x, max_batch=1024)
    assert sliced.shape == (70,)
    np.testing.assert_allclose(sliced, whole, rtol=1e-5)


# -- IO binding (worker/score.py BoundScorer) -------------------------------------------------------


def test_io_binding_gives_exactly_the_scores_of_run(tiny_models) -> None:
    model = tiny_models.resolve(None)
    x = np.random.default_rng(1).random((70, 28, 28), dtype=np.float32)
    for max_batch in (1, 16, 70, 1024):
        bound = BoundScorer(model, max_batch).score(x)
        assert bound.dtype == np.float64 and bound.shape == (70,)
        np.testing.assert_array_equal(bound, RunScorer(model, max_batch).score(x))


@pytest.fixture(scope="module")
def window_model(tmp_path_factory: pytest.TempPathFactory):
    """A hand-built metric bundle (no training): its score is easy to predict."""
    folder = tmp_path_factory.mktemp("repo") / "lp" / "1"
    write_last_point_bundle(folder, window=8)
    return load_bundle(folder, [CPU])


def test_io_binding_equals_run_on_a_metric_model_and_reuses_its_buffer(window_model) -> None:
    x = np.random.default_rng(2).standard_normal((37, 8)).astype(np.float32)
    scorer = BoundScorer(window_model, 16)
    out = scorer.out
    first = scorer.score(x)
    np.testing.assert_array_equal(first, RunScorer(window_model, 16).score(x))
    again = scorer.score(x[::-1].copy())
    assert scorer.out is out  # preallocated once, for --max-batch rows
    np.testing.assert_array_equal(first, RunScorer(window_model, 16).score(x))  # not overwritten
    # Other rows share each call now, and the vectorised arithmetic may round one ulp otherwise.
    np.testing.assert_allclose(again, first[::-1], rtol=1e-6)


def test_scorer_for_the_cpu_follows_the_setting(window_model) -> None:
    assert type(scorer_for(window_model, 8, "auto")) is BoundScorer  # the CPU default (internals.md#scoring)
    assert type(scorer_for(window_model, 8, "on")) is BoundScorer
    assert type(scorer_for(window_model, 8, "off")) is RunScorer


class RowsKind:
    """A batch's kind (worker/batch.py BatchKind) whose model input is its rows."""

    row_dtype = np.float32
    rows_are_input = True

    def __init__(self, model) -> None:
        self.model = model

    def model_inputs(self, rows: np.ndarray) -> tuple[np.ndarray, object]:
        return rows, None


def batch_of(kind: RowsKind, rows: np.ndarray) -> Batch:
    batch = Batch(kind, capacity=len(rows))
    for i, row in enumerate(rows):
        batch.append(Item(message=None, record=None, record_id=str(i), row=row))
    return batch


@pytest.mark.parametrize("io_binding", ["on", "off"])
def test_batches_in_flight_do_not_share_buffers(window_model, io_binding: str) -> None:
    """The loop forms the next batch while the scoring thread runs one: each batch's rows are its own,
    and the scores handed back are copies, so neither batch's scores change the other's."""
    kind = RowsKind(window_model)
    rng = np.random.default_rng(3)
    rows = [rng.standard_normal((n, 8)).astype(np.float32) for n in (64, 64, 30)]
    expected = [RunScorer(window_model, 64).score(r) for r in rows]
    stage = ScoreStage(64, depth=3, io_binding=io_binding)
    try:
        batches = [batch_of(kind, r) for r in rows]
        for b in batches:
            stage.submit(b)  # all three in flight at once
        for r in rows:
            r[:] = 0  # the producer's arrays change after they were copied into the batches' rows
        results = []
        while len(results) < 3:
            results += stage.completed(wait_s=5)
        for result, want in zip(results, expected, strict=True):
            assert result.error is None
            np.testing.assert_array_equal(result.scores, want)
            stage.finish(result.batch)
        assert not stage.busy()
    finally:
        stage.close()


def test_row_buffers_are_reused_only_once_a_batch_is_published(window_model) -> None:
    """The batch stage writes each record's row straight into a buffer of --max-batch rows; a buffer
    goes back for reuse when its batch's outputs are published (ScoreStage.finish), not before."""
    kind, rng = RowsKind(window_model), np.random.default_rng(4)
    batcher, stage = Batcher(4, 60_000), ScoreStage(4, depth=3, io_binding="on")

    def fill() -> tuple[Batch, np.ndarray]:
        rows = rng.standard_normal((4, 8)).astype(np.float32)
        full = [batcher.add(kind, Item(message=None, record=None, record_id="r", row=r)) for r in rows]
        assert full[-1] is not None
        return full[-1], rows

    try:
        (a, a_in), (b, b_in) = fill(), fill()
        a_rows = a._rows
        assert a_rows is not b._rows  # both open or in flight: never one buffer
        stage.submit(a)
        stage.submit(b)
        done = []
        while len(done) < 2:
            done += stage.completed(wait_s=5)
        for result, rows in zip(done, (a_in, b_in), strict=True):
            np.testing.assert_array_equal(result.scores, RunScorer(window_model, 4).score(rows))
        stage.finish(a)
        c, c_in = fill()
        assert c._rows is a_rows  # a is published: its buffer serves the next batch
        stage.submit(c)
        [result] = stage.completed(wait_s=5)
        np.testing.assert_array_equal(result.scores, RunScorer(window_model, 4).score(c_in))
        np.testing.assert_array_equal(done[1].scores, RunScorer(window_model, 4).score(b_in))  # b's stand
    finally:
        stage.close()


def test_a_scorer_that_cannot_be_made_fails_each_batch_and_is_made_once(window_model, monkeypatch) -> None:
    import worker.score as score

    made: list[str] = []

    def refusing(model, max_batch, io_binding, explain):
        made.append(model.key)
        raise ValueError("the CUDA graph's warm-up gave non-finite scores")

    monkeypatch.setattr(score, "scorer_for", refusing)
    stage = ScoreStage(8, depth=2)
    try:
        rows = np.ones((4, 8), np.float32)
        for _ in range(3):
            stage.submit(batch_of(RowsKind(window_model), rows))
        results = []
        while len(results) < 3:
            results += stage.completed(wait_s=5)
        assert [str(r.error) for r in results] == ["the CUDA graph's warm-up gave non-finite scores"] * 3
        assert made == [window_model.key]  # made once, not once per batch
        for r in results:
            stage.finish(r.batch)
    finally:
        stage.close()


def test_batch_rows_are_page_locked_only_where_they_are_the_model_input_on_cuda(window_model) -> None:
    from dataclasses import replace

    on_cuda = replace(window_model, providers=[CUDA, "CPUExecutionProvider"])
    features = type("FeaturesKind", (RowsKind,), {"rows_are_input": False})
    assert Batch(RowsKind(on_cuda), capacity=1)._pinned
    assert not Batch(features(on_cuda), capacity=1)._pinned  # metric points: features go to the model
    assert not Batch(RowsKind(window_model), capacity=1)._pinned  # the CPU
