"""What `python -m training evaluate BUNDLE --data CSV` prints when there is nothing to compare (no
labelled anomaly where NAB scores), and its warning for a series at another interval than the model's
grid: plain words, no nan, and no two lines that contradict each other. No model is trained here."""

from __future__ import annotations

import numpy as np

from schemas import MetricPreprocessing
from schemas.manifest import SeriesStats
from training.kpi.band import BandCoverage
from training.kpi.evaluate import SeriesOutcome, evaluate, report
from training.kpi.load import RawSeries
from training.kpi.pipeline import KpiEvaluation, interval_warning


def test_the_band_line_without_labelled_windows_gives_the_share_inside_and_no_nan() -> None:
    band = BandCoverage(normal_points=2940, normal_inside=2905)
    line = band.line()
    assert "nan" not in line and "0 of 0" not in line
    assert line.startswith("normal band: holds 98.8% of 2,940 points")
    assert "no labelled anomaly windows to check" in line


def test_the_band_line_with_labelled_windows_gives_both_shares_and_the_kinds() -> None:
    band = BandCoverage(10, 9, 4, 3, {"dip": [1, 2], "spike": [2, 2]})
    assert band.line() == (
        "normal band: holds 90.0% of 10 normal points; 3 of 4 labelled windows (75%) have a point "
        "outside it (dip 1/2, spike 2/2)"
    )


def _evaluation(labels: np.ndarray) -> KpiEvaluation:
    """The detector alerting every 100th point of one series with these labels, as evaluate --data
    reports it (NAB's probationary 15 %)."""
    alerts = np.arange(labels.size) % 100 == 0
    outcome = SeriesOutcome(labels, np.where(labels == 1, "spike", ""), alerts, days=2.0)
    r = report("detector", [alerts.astype(float)], [labels], evaluate([outcome]), 0.15)
    band = BandCoverage(normal_points=900, normal_inside=890)
    return KpiEvaluation([r], {}, "every point of 1 series after NAB's probationary 15%", band)


def test_labels_only_in_the_probationary_part_print_alert_rates_without_nan_or_contradiction() -> None:
    # Before: NAB rows of nan and "segments detected 0/1" in the table, then "no labelled anomalies".
    labels = np.zeros(1000, np.int8)
    labels[50:55] = 1  # NAB does not score its first 15 %
    ev = _evaluation(labels)
    text = f"{ev.table()}\n{ev.verdict()}"
    assert "nan" not in text.lower()
    assert "NAB standard" not in text and "segments detected" not in text
    assert "1 labelled segment(s) lie in or next to NAB's probationary first part" in text
    assert "nothing to compare the detectors on" in ev.verdict()


def test_unlabelled_data_prints_alert_rates_and_the_band_share_only() -> None:
    ev = _evaluation(np.zeros(1000, np.int8))
    text = f"{ev.table()}\n{ev.verdict()}"
    assert "nan" not in text.lower() and "0 of 0" not in text
    assert "no labelled anomalies there, so no detection figures; alert rates only" in text
    assert "holds 98.9% of 900 points (none labelled anomalous)" in text


def _series(key: str, step_s: float, n: int = 200, seed: int = 0) -> RawSeries:
    ts = 1_767_225_600 + step_s * np.arange(n, dtype=np.float64)
    ts += np.random.default_rng(seed).uniform(-0.1, 0.1, n) * step_s  # jitter of +-10 %
    return RawSeries(key, ts, np.ones(n), None, None, "test.csv")


PRE = MetricPreprocessing(
    window=32, interval_s=60.0, reset_gap=32, series={"known": SeriesStats(interval_s=60.0)}
)


def test_evaluate_warns_for_a_series_at_five_times_the_models_interval_known_or_not() -> None:
    known = interval_warning(_series("known", 300.0), PRE)
    assert known is not None and "series 'known': points every 300 s" in known
    assert "model learnt windows of 60 s points" in known and "the bundle knows it at 60 s" in known
    assert "about 4 of every 5 slots filled by interpolation" in known
    assert "python -m training train --dataset csv --data" in known
    new = interval_warning(_series("new", 300.0), PRE)  # the bundle's grid interval: 60 s
    assert new is not None and "scored on its own grid, each window spanning 5x the time" in new


def test_evaluate_warns_for_finer_points_and_for_gaps_that_restart_every_window() -> None:
    finer = interval_warning(_series("known", 12.0), PRE)
    assert finer is not None and "about 4 of every 5 points dropped as a second point" in finer
    hourly = interval_warning(_series("new", 3600.0), PRE)
    assert hourly is not None and "gaps of 59 slots (reset_gap 32 or more) restart the window" in hourly


def test_jitter_and_missing_points_at_the_models_interval_do_not_warn() -> None:
    s = _series("known", 60.0, seed=3)
    keep = np.ones(s.timestamps.size, bool)
    keep[10:200:7] = False  # one point in 7 missing
    keep[100:110] = False  # and a gap of 10
    s = RawSeries(s.key, s.timestamps[keep], s.values[keep], None, None, s.source)
    assert interval_warning(s, PRE) is None
    assert interval_warning(_series("new", 75.0), PRE) is None  # 1.25x: within the rule
