"""Record kinds (worker/kinds/): how a metric point becomes model input, is decided on, and what its
outputs carry; which kind serves which model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas import MetricPoint, Reason, Rejection, metric_message
from tests.worker_fakes import message
from tooling.metric_bundles import write_last_point_bundle
from worker.batch import Item
from worker.kinds import KINDS, Held, kinds_for
from worker.kinds.image import ImageKind
from worker.kinds.metric import MetricKind
from worker.serving.registry import ModelRegistry
from worker.settings import WorkerSettings

W = 4
T0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def metric_kind(tmp_path_factory) -> MetricKind:
    repo = tmp_path_factory.mktemp("kinds")
    write_last_point_bundle(repo / "kpi-test" / "1", window=W)
    [kind] = kinds_for(ModelRegistry.load(repo, "cpu", None, None), WorkerSettings(metrics_port=0)).values()
    assert isinstance(kind, MetricKind)
    return kind


def prepared(kind: MetricKind, value: float, minute: int | None, offset: int):
    ts = None if minute is None else T0 + timedelta(minutes=minute)
    point = MetricPoint.model_validate_json(metric_message("cpu", value, labels={"host": "a"}, ts=ts)[1])
    return kind.prepare(message(b"", offset), point, f"in:0:{offset}")


def test_every_kind_a_manifest_can_name_has_its_module() -> None:
    from schemas import ModelManifest

    assert set(KINDS) == set(ModelManifest.model_fields["kind"].annotation.__args__)
    assert KINDS["image"] is ImageKind and KINDS["metric"] is MetricKind


def test_a_metric_point_is_held_until_its_window_is_full_then_keyed_and_described_by_its_series(
    metric_kind,
) -> None:
    held = [prepared(metric_kind, 1.0, m, m) for m in range(W - 1)]
    assert all(isinstance(h, Held) and h.why == "warming" for h in held)
    item = prepared(metric_kind, 5.0, None, W - 1)  # no ts: the alert names the point's grid time
    assert isinstance(item, Item) and item.row.shape == (W,)
    inputs, features = metric_kind.model_inputs(item.row[None, :])
    assert inputs.shape == (1, W) and inputs.dtype == np.float32
    verdicts = metric_kind.decide([item], np.array([9.0]), features)
    assert verdicts.decisions is not None and len(verdicts.alerts) == 1
    fields = metric_kind.output_fields(item, verdicts, 0)
    d = verdicts.decisions[0]
    assert metric_kind.output_key(item) == 'cpu{host="a"}'
    assert fields == {
        "series_key": 'cpu{host="a"}', "series": "cpu", "labels": {"host": "a"}, "value": 5.0, "window": W,
        "detector": d.part, "detector_score": d.part_score, "detector_threshold": d.part_threshold,
        "ts": T0 + timedelta(minutes=W - 1), "expected": d.expected, "lower": d.lower, "upper": d.upper,
    }  # fmt: skip


def test_a_series_key_over_its_byte_budget_is_refused_and_the_series_not_kept(tmp_path) -> None:
    write_last_point_bundle(tmp_path / "kpi-test" / "1", window=W)
    settings = WorkerSettings(metrics_port=0, max_series_key_bytes=1000)
    [kind] = kinds_for(ModelRegistry.load(tmp_path, "cpu", None, None), settings).values()
    point = MetricPoint.model_validate_json(metric_message("cpu", 1.0, labels={"host": "é" * 600})[1])
    refused = kind.prepare(message(b"", 0), point, "in:0:0")
    assert isinstance(refused, Rejection) and refused.reason is Reason.TOO_LARGE
    assert (
        f"{len(point.series_key.encode()):,} bytes" in refused.error
        and "--max-series-key-bytes" in refused.error
        and len(kind.windows) == 0
    )
    fits = MetricPoint.model_validate_json(metric_message("cpu", 1.0, labels={"host": "é" * 400})[1])
    assert isinstance(kind.prepare(message(b"", 1), fits, "in:0:1"), Held)


def test_a_message_time_far_off_does_not_start_a_series_grid(metric_kind) -> None:
    point = MetricPoint.model_validate_json(metric_message("far", 1.0)[1])
    msg = message(b"", 0)
    msg = msg._replace(timestamp=253402300799000)  # 9999-12-31T23:59:59Z, in ms
    assert isinstance(metric_kind.prepare(msg, point, "in:0:0"), Held)
    points = [metric_kind.prepare(message(b"", o), point, f"in:0:{o}") for o in range(1, W)]
    window = points[-1].context
    assert window.slot_ts < 7258118400  # the grid started at the epoch, not past year 2200


def test_window_differences_name_what_makes_a_window_mean_something_else() -> None:
    from schemas.manifest import MetricPreprocessing
    from worker.kinds.metric import window_differences

    old = MetricPreprocessing(window=32, interval_s=60, reset_gap=5)
    assert window_differences(old, old.model_copy()) is None
    new = old.model_copy(update={"window": 16, "clip": 10.0})
    assert window_differences(old, new) == "window 32 -> 16; clip 20.0 -> 10.0"


def test_the_graphs_reconstruction_goes_out_in_the_series_units(metric_kind) -> None:
    """What the VAE rebuilds for the last point (scaled as the model sees windows) is scaled back."""
    for m in range(W - 1):  # later than the series' points of the tests before (one module-wide kind)
        prepared(metric_kind, 10.0 + m, 1000 + m, 100 + m)
    item = prepared(metric_kind, 20.0, 1000 + W - 1, 100 + W - 1)
    assert isinstance(item, Item)
    _, features = metric_kind.model_inputs(item.row[None, :])
    verdicts = metric_kind.decide([item], np.array([0.1]), features, np.array([0.5], np.float32))
    fields = metric_kind.output_fields(item, verdicts, 0)
    assert fields["reconstructed"] == pytest.approx(features.center[0] + 0.5 * features.scale[0])
    assert features.scale[0] > 0 and fields["reconstructed"] != fields["value"]
    no_value = metric_kind.decide([item], np.array([0.1]), features, np.array([np.inf], np.float32))
    assert "reconstructed" not in metric_kind.output_fields(item, no_value, 0)  # not finite: left out


def test_series_at_another_interval_than_the_grid_are_logged_once_each_and_the_log_is_bounded(
    tmp_path, caplog
) -> None:
    from worker.kinds.metric import MAX_INTERVAL_WARNINGS, interval_warning
    from worker.windows import INTERVAL_GAPS, IntervalMismatch

    write_last_point_bundle(tmp_path / "kpi-test" / "1", window=8)  # a 60 s grid, reset_gap 8
    registry = ModelRegistry.load(tmp_path, "cpu", None, None)
    [kind] = kinds_for(registry, WorkerSettings(metrics_port=0)).values()
    t0 = T0.timestamp()
    caplog.set_level("WARNING", logger="worker.kinds.metric")
    for n in range(MAX_INTERVAL_WARNINGS + 5):
        for i in range(INTERVAL_GAPS + 3):
            kind.windows.push(f"s{n}", t0 + 300.0 * i, 1.0, ("in", 0))
        kind.warn_intervals()  # once per poll, as report() calls it
    kind.warn_intervals()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == MAX_INTERVAL_WARNINGS + 1  # one per series named, one for the rest
    assert lines[0] == (
        "kpi-test:1: series 's0': points arrive every 300 s (median gap of its first points), but the "
        "model's grid for it is 60 s: about 4 of every 5 slots are filled by interpolation, so each "
        "window holds about 1/5 of the real points the model learnt from, so expect false or missed "
        "alerts. Train a model on "
        "data at 300 s (python -m training train --dataset csv --data <a CSV of these series>) and serve "
        "that one for these series"
    )
    assert "they are not named (the first 20 are above)" in lines[-1]
    hourly = interval_warning(IntervalMismatch("h", 3600.0, 60.0), reset_gap=8)
    assert "gaps of 59 slots (reset_gap 8 or more) restart its window at every point" in hourly
    assert kind.windows.interval_mismatched == MAX_INTERVAL_WARNINGS + 5
