"""The KPI path of training: windows and masks, baseline, point-adjusted metrics, export parity,
and a tiny bundle trained for real (manifest, graph, offline alerts, re-evaluation, CLI)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from schemas import MetricPreprocessing, ModelManifest
from schemas.detect import TAIL_PARTS, StateFile, window_features
from schemas.manifest import manifest_checksum_line, sha256_file
from schemas.timeseries import windows_ending_at
from tests.cli_helpers import has_flag, help_text
from tests.kpi_helpers import tiny_kpi_csv, train_tiny_kpi_bundle
from training.kpi.baseline import hampel, rolling_zscore
from training.kpi.evaluate import SeriesOutcome, evaluate, point_adjust
from training.kpi.labels import segments
from training.kpi.load import RawSeries
from training.kpi.synth import CLEAN_SIGNALS, clean_signals
from training.kpi.windows import WindowConfig, prepare_series, training_windows

REPO = Path(__file__).resolve().parents[1]


# --- windows and masks -----------------------------------------------------------------


def raw(ts: np.ndarray, values: np.ndarray, labels: np.ndarray | None = None) -> RawSeries:
    return RawSeries("s", ts.astype(float), values.astype(float), labels, None, "test")


def test_split_by_time_windows_scaled_by_their_own_past_and_filled_points_masked() -> None:
    n = 100
    ts = np.arange(n) * 60.0
    values = np.arange(n, dtype=float)
    values[60:] += 1000.0  # a later step: only the windows that hold it see it
    keep = np.ones(n, dtype=bool)
    keep[[20, 21]] = False  # a short gap in the training part
    cfg = WindowConfig(window=8, reset_gap=5, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    s = prepare_series(raw(ts[keep], values[keep]), cfg)
    assert s.interval_s == 60.0 and len(s.grid) == n
    assert (s.train_end, s.val_end) == (50, 70)
    assert s.grid.missing[[20, 21]].all() and s.labels[[20, 21]].tolist() == [0, 0]
    x, m = training_windows([s], cfg, "train")
    assert x.shape == m.shape == (50 - 7, 8)  # every window ending in the training part
    assert x.dtype == np.float32
    raw_windows = windows_ending_at(s.grid.values, np.arange(7, 50), 8)
    np.testing.assert_array_equal(x, window_features(raw_windows, cfg.clip).z)
    row = 21 - 7  # the window ending at slot 21 holds both filled points, last
    assert m[row].tolist() == [True] * 6 + [False, False]
    assert not m[row + 3].all() and m[row + 9].all()
    xv, _ = training_windows([s], cfg, "val")
    assert len(xv) == 20


def test_labels_and_kinds_land_on_their_grid_slots() -> None:
    ts = np.array([0, 60, 120, 240, 300]) * 1.0
    labels = np.array([0, 1, 1, 0, 1], dtype=np.int8)
    r = RawSeries("s", ts, np.arange(5.0), labels, ["", "dip", "dip", "", ""], "test")
    cfg = WindowConfig(window=2, reset_gap=5, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    s = prepare_series(r, cfg)
    assert s.labels.tolist() == [0, 1, 1, 0, 0, 1]  # slot 3 is filled: never labelled
    assert s.kinds.tolist() == ["", "dip", "dip", "", "", "anomaly"]  # a label without a kind


# --- baseline ----------------------------------------------------------------------------


def test_rolling_zscore_uses_only_the_previous_points_up_to_its_history() -> None:
    x = np.array([1.0, 2.0, 3.0, 10.0, 3.0])
    z = rolling_zscore(x, np.array([3, 4]), history=3)
    prev = np.array([1.0, 2.0, 3.0])
    assert z[0] == pytest.approx(abs(10 - prev.mean()) / prev.std())
    prev = np.array([2.0, 3.0, 10.0])
    assert z[1] == pytest.approx(abs(3 - prev.mean()) / prev.std())
    assert rolling_zscore(x, np.array([2]))[0] == pytest.approx(abs(3 - 1.5) / 0.5)  # fewer at the start
    flat = rolling_zscore(np.array([5.0, 5.0, 5.0, 5.0]), np.array([3]), history=3)
    assert flat.tolist() == [0.0]  # a flat history does not divide by zero


def test_hampel_is_robust_to_an_outlier_in_its_own_history() -> None:
    x = np.array([10.0, 11.0, 9.0, 1000.0, 10.0, 12.0])
    [score] = hampel(x, np.array([5]), window=6)  # history: 10, 11, 9, 1000, 10
    assert score == pytest.approx(abs(12 - 10) / (1.4826 * 1.0))


# --- point-adjusted metrics --------------------------------------------------------------


def test_segments_and_point_adjustment_as_donut() -> None:
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0])
    alerts = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    assert segments(labels) == [(1, 4), (6, 8)]
    assert point_adjust(labels, alerts).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]
    # With a delay limit, an alert on the third point of the segment is too late.
    assert point_adjust(labels, alerts, delay=1).astype(int).tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_precision_recall_f1_false_alarms_and_per_kind() -> None:
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    kinds = np.array(["", "variance", "variance", "variance", "", "", "dip", "dip", "", ""])
    alerts = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    d = evaluate([SeriesOutcome(labels, kinds, alerts, days=0.5)])
    assert (d.tp, d.fp, d.fn) == (3, 2, 2)
    assert d.precision == pytest.approx(3 / 5) and d.recall == pytest.approx(3 / 5)
    assert d.f1 == pytest.approx(0.6) and d.false_alarms_per_day == pytest.approx(4.0)
    assert (d.segments, d.detected) == (2, 1)
    assert d.per_kind["variance"].recall == 1.0 and d.per_kind["dip"].recall == 0.0
    assert d.per_kind["variance"].f1 == pytest.approx(2 * (3 / 5) * 1 / (3 / 5 + 1))  # against all 2 FPs
    base = evaluate([SeriesOutcome(labels, kinds, np.zeros(10, dtype=bool), days=0.5)])
    assert base.f1 == 0.0


# --- export and parity -------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    from training.kpi.export import export_window_graph
    from training.kpi.model import WindowVAE

    torch.manual_seed(0)
    model = WindowVAE(window=16, latent_dim=3, hidden=(20,), score_points=2).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_window_graph(model, path)
    windows = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    return model, path, windows


def test_graph_has_a_dynamic_batch_and_matches_torch(exported) -> None:
    from training.kpi.export import check_window_parity
    from training.kpi.fit import torch_window_scores

    model, path, windows = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [inp], [out, rebuilt] = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "window" and isinstance(inp.shape[0], str) and inp.shape[1:] == [16]
    assert out.name == "score" and rebuilt.name == "reconstruction"
    for n in (1, 7, 300):
        scores, last = sess.run(["score", "reconstruction"], {"window": windows[:n]})
        assert scores.shape == last.shape == (n,)
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(windows))
        expected = ((model.decode(mu) - torch.from_numpy(windows))[:, -2:] ** 2).mean(dim=1).numpy()
        expected_last = model.decode(mu)[:, -1].numpy()
    np.testing.assert_allclose(torch_window_scores(model, windows), expected, rtol=1e-6)
    np.testing.assert_allclose(last, expected_last, rtol=1e-4, atol=1e-5)  # the graph's, as torch's
    assert check_window_parity(model, path, windows) <= 1e-4


def test_parity_check_catches_a_graph_that_drifted(exported) -> None:
    from training.core.export import ParityError
    from training.kpi.export import check_window_parity

    model, path, windows = exported
    drifted = copy.deepcopy(model)
    with torch.no_grad():
        drifted.to_mu.bias.add_(0.05)
    with pytest.raises(ParityError, match="differ by"):
        check_window_parity(drifted, path, windows)


# --- a tiny bundle, trained for real -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_kpi(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("kpi")
    csv = tiny_kpi_csv(root / "data")
    return train_tiny_kpi_bundle(root / "models" / "kpi-tiny" / "1", csv, report=True), csv


def test_tiny_bundle_is_a_valid_metric_bundle(tiny_kpi) -> None:
    trained, csv = tiny_kpi
    folder, manifest = trained.folder, trained.manifest
    on_disk = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "manifest.json", "evaluation.json", "history.json"} <= on_disk
    assert {"series_scores.png", "recall_per_kind.png", "loss_curves.png"} <= on_disk
    assert set(manifest.files) == on_disk - {"manifest.json", "manifest.sha256"}
    assert (folder / "manifest.sha256").read_text() == manifest_checksum_line(
        (folder / "manifest.json").read_bytes()
    )
    assert all(sha256_file(folder / n) == h for n, h in manifest.files.items())
    assert ModelManifest.model_validate_json((folder / "manifest.json").read_text()) == manifest
    assert manifest.kind == "metric" and manifest.name == "kpi-tiny" and manifest.version == "1"
    assert manifest.input.name == "window" and manifest.input.shape == [32]
    assert manifest.outputs["score"].shape == []
    pre = manifest.preprocessing
    assert isinstance(pre, MetricPreprocessing)
    assert pre.window == 32 and pre.interval_s == 300.0 and pre.reset_gap == 32
    assert sorted(pre.series) == ["kpi_0000", "kpi_0001", "kpi_0002"]
    assert pre.normalisation == "window" and set(pre.detector.priors) == set(TAIL_PARTS)
    assert pre.state_file == "series_state.npz" and "series_state.npz" in manifest.files
    primed = StateFile.read(folder / pre.state_file)
    assert sorted(primed.keys) == sorted(pre.series) and all(primed.interval(k) == 300.0 for k in primed.keys)
    assert manifest.threshold == manifest.calibration.threshold == pre.detector.threshold
    assert manifest.calibration.method == "adaptive"
    assert manifest.training["data"] == str(csv.resolve())
    for name in ("detector", "zscore", "hampel"):
        assert {f"{name}_f1", f"{name}_nab_standard", f"{name}_false_alarms_per_day"} <= set(manifest.metrics)


def test_tiny_bundle_scores_windows_deterministically(tiny_kpi) -> None:
    trained, _ = tiny_kpi
    windows = np.random.default_rng(1).normal(size=(50, 32)).astype(np.float32)
    sess = ort.InferenceSession(str(trained.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    [a] = sess.run(["score"], {"window": windows})
    [b] = sess.run(["score"], {"window": windows})
    assert a.shape == (50,) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_predict_alerts_matches_the_evaluation_of_the_same_csv_and_imports_no_torch(tiny_kpi) -> None:
    """Both score every point as the worker would: each known series from its primed state."""
    from training.kpi.pipeline import evaluate_kpi_bundle

    trained, csv = tiny_kpi
    _, ev = evaluate_kpi_bundle(trained.folder, csv)
    expected = set()
    for s, sc in zip(trained.series, ev.scored["detector"], strict=True):
        expected |= {(s.key, float(t)) for t in s.times[sc.ends[sc.alerts]]}
    code = (
        "import sys, json; from training.kpi.offline import predict_alerts; "
        f"a = predict_alerts({str(trained.folder)!r}, {str(csv)!r}); "
        "assert 'torch' not in sys.modules; print(json.dumps([list(x) for x in a]))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    import json

    alerts = json.loads(run.stdout)
    assert alerts and {(k, t) for k, t, _, _ in alerts} == expected
    threshold = trained.manifest.threshold
    assert all(thr >= threshold and score >= thr for _, _, score, thr in alerts)


def test_a_known_series_starts_from_its_primed_state_and_a_new_one_from_the_priors(tiny_kpi) -> None:
    """Under another name the same values are a new series: scored from the priors, as the known
    series is when its primed state is set aside."""
    from schemas.detect import StateMatrices
    from training.core.onnx_scoring import cpu_session
    from training.kpi.load import load_csv
    from training.kpi.offline import series_detection

    trained, csv = tiny_kpi
    raw = load_csv(csv).series["kpi_0000"]
    session = cpu_session(trained.folder / "model.onnx")
    none = StateFile([], StateMatrices.empty(0))
    _, known = series_detection(trained.manifest, session, "kpi_0000", raw.timestamps, raw.values)
    _, unprimed = series_detection(trained.manifest, session, "kpi_0000", raw.timestamps, raw.values, none)
    _, new = series_detection(trained.manifest, session, "new_series", raw.timestamps, raw.values)
    assert new.scores.tolist() == unprimed.scores.tolist()
    assert known.scores.tolist() != unprimed.scores.tolist()  # the primed state was used


@pytest.mark.parametrize("name", CLEAN_SIGNALS)
def test_clean_signals_raise_no_alert_over_30_days_through_a_trained_vae(tiny_kpi, name: str) -> None:
    """Series training never saw, scored as the worker scores them: nothing to find, nothing found."""
    from training.core.onnx_scoring import cpu_session
    from training.kpi.offline import series_detection

    trained, _ = tiny_kpi
    values = clean_signals(days=33, interval_s=300.0, seed=1)[name]
    ts = 1_767_225_600.0 + 300.0 * np.arange(len(values))
    times, scored = series_detection(trained.manifest, cpu_session(trained.folder / "model.onnx"), name,
                                     ts, values)  # fmt: skip
    assert not scored.alerts[times >= ts[0] + 3 * 86_400].any()


def test_a_spike_of_20_times_the_recent_range_alerts_through_a_trained_vae(tiny_kpi) -> None:
    from training.core.onnx_scoring import cpu_session
    from training.kpi.offline import series_detection

    trained, _ = tiny_kpi
    rng = np.random.default_rng(3)
    values = np.abs(rng.standard_t(1.5, 5000)) * 3 + 50  # heavy-tailed
    at = 4000
    recent = values[at - 1000 : at]
    values[at] = values[at - 1] + 20 * (recent.max() - recent.min())
    ts = 1_767_225_600.0 + 300.0 * np.arange(len(values))
    times, scored = series_detection(trained.manifest, cpu_session(trained.folder / "model.onnx"), "heavy",
                                     ts, values)  # fmt: skip
    assert scored.alerts[times == ts[at]].all()


def test_evaluate_bundle_reproduces_the_training_figures(tiny_kpi) -> None:
    from training.kpi.pipeline import evaluate_kpi_bundle

    trained, _ = tiny_kpi
    manifest, ev = evaluate_kpi_bundle(trained.folder)
    for key, value in ev.metrics().items():
        assert value == pytest.approx(manifest.metrics[key], abs=1e-9), key
    # The detector's normal band on the same points: the evaluation says how well it fits.
    band = ev.band
    assert band is not None and band.normal_points > 500 and band.windows > 0
    assert 0.9 <= band.inside_share <= 1.0 and 0 < band.windows_outside <= band.windows
    assert sum(n for _, n in band.per_kind.values()) == band.windows
    assert "normal band: holds" in ev.verdict() and ev.as_json()["band"]["windows"] == band.windows


def test_train_refuses_an_existing_bundle_folder_and_csv_without_data(tiny_kpi) -> None:
    from schemas.repository import BundleExistsError
    from training.kpi.pipeline import train_kpi_bundle
    from training.settings import KpiTrainSettings

    trained, csv = tiny_kpi
    with pytest.raises(BundleExistsError, match="already exists"):
        train_tiny_kpi_bundle(trained.folder, csv)
    with pytest.raises(ValueError, match="--dataset csv needs --data"):
        train_kpi_bundle(KpiTrainSettings(dataset="csv", out=trained.folder.parent / "2"))
    with pytest.raises(ValueError, match="--split"):
        KpiTrainSettings(dataset="csv", split="50,50").split_fractions()


def test_cli_help_lists_the_csv_options_and_evaluate_prints_the_table(tiny_kpi) -> None:
    from training.settings import ImageTrainSettings, KpiTrainSettings

    trained, _ = tiny_kpi
    text = help_text("train", "--dataset", "csv")
    for field in KpiTrainSettings.model_fields:
        assert has_flag(text, field), field
    for field in set(ImageTrainSettings.model_fields) - set(KpiTrainSettings.model_fields):
        assert not has_flag(text, field), field
    run = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", str(trained.folder)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "NAB standard" in run.stdout and "zscore" in run.stdout and "hampel" in run.stdout
    assert "PA-F1" in run.stdout and "detector vs zscore" in run.stdout


def test_context_anomalies_never_touch_the_scored_points_and_zero_share_is_identity():
    import torch

    from training.kpi.fit import inject_context_anomalies

    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(500, 40)
    out = inject_context_anomalies(x, 1.0, 2, gen)
    assert torch.all(out[:, -2:] == 0)
    changed = (out != 0).any(dim=1)
    assert changed.all()  # share 1: every window got a bump
    amp = out.abs().amax(dim=1)
    assert amp.min() >= 2 and amp.max() <= 8
    assert torch.equal(inject_context_anomalies(x, 0.0, 2, gen), x)


def test_without_labels_the_comparison_gives_alert_rates_not_detection_figures():
    from training.kpi.evaluate import SeriesOutcome, evaluate, format_comparison, report

    alerts = np.arange(1000) % 100 == 0
    outcome = SeriesOutcome(
        labels=np.zeros(1000, np.int8), kinds=np.array([""] * 1000), alerts=alerts, days=2.0
    )
    r = report("detector", [alerts.astype(float)], [np.zeros(1000, np.int8)], evaluate([outcome]), 0.15)
    text = format_comparison([r], "test")
    assert "no labelled anomalies" in text and "NAB" not in text and "F1" not in text
    assert "5.00" in text  # 10 alerts over 2 series-days


def test_the_graph_rebuilds_each_windows_last_point_and_the_worker_reads_it_in_series_units(tiny_kpi) -> None:
    """The exported graph's second output, the VAE's value for the window's last point, read by the
    worker's scorer beside the score and scaled back: on the normal points of the training series it
    lies near the value (within a few of the window's own scales), and nowhere is it NaN."""
    import csv as csv_module

    from worker.kinds.metric import reconstructed_values
    from worker.score import RunScorer
    from worker.serving.registry import ModelRegistry

    trained, csv = tiny_kpi
    assert trained.manifest.outputs["reconstruction"].shape == []
    [model] = list(ModelRegistry.load(trained.folder.parent.parent, "cpu", None, None))
    with open(csv, newline="") as f:
        rows = [r for r in csv_module.DictReader(f) if r["series"] == "kpi_0000"]
    values = np.array([float(r["value"]) for r in rows])
    normal = np.array([r["label"] == "0" for r in rows])
    ends = np.flatnonzero(normal[31:]) + 31
    features = window_features(windows_ending_at(values, ends, 32), trained.manifest.preprocessing.clip)
    scores, rebuilt = RunScorer(model, 256, explain=True).score_and_map(features.z)
    assert rebuilt is not None and rebuilt.shape == scores.shape == (len(ends),)
    values_back = reconstructed_values(features, rebuilt)
    assert np.isfinite(values_back).all()
    off = np.abs(values_back - values[ends]) / features.scale
    assert np.median(off) < 2.0, f"the rebuilt last points are a median {np.median(off):.2f} scales off"
    assert RunScorer(model, 256, explain=False).score_and_map(features.z)[1] is None  # --no-explain
