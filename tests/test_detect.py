"""The metric detector shared by the worker and the offline scorer (schemas/detect/): scaling that
follows the series, thresholds that adapt per series, the parts beside the VAE, seasons, the
post-processing of scores, bounded state. The model's score is a stand-in here (the mean square of
the scaled window); test_kpi_training.py runs the same checks through a trained VAE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from schemas.detect import (
    PARTS,
    Col,
    DetectorParams,
    PointInputs,
    SeriesPoints,
    StateFile,
    StateMatrices,
    bytes_per_row,
    decide,
    decide_in_order,
    replay,
    window_features,
)
from schemas.timeseries import windows_ending_at
from training.kpi.synth import clean_signals

W = 16
DAY = 288  # 5-minute points


def last_point_error(z: np.ndarray) -> np.ndarray:
    """The stand-in model: the scaled last point's squared distance from the mean of the others."""
    z = z.astype(np.float64)
    return (z[:, -1] - z[:, :-1].mean(axis=1)) ** 2


def points(values: np.ndarray, interval: float = 300.0, key: str = "s", window: int = W) -> SeriesPoints:
    """A series' scored points: every window, the stand-in model's score, 5-minute grid times."""
    ends = np.arange(window - 1, len(values))
    f = window_features(windows_ending_at(np.asarray(values, float), ends, window), 20.0)
    scores = last_point_error(f.z)
    return SeriesPoints(key, interval, PointInputs.of(f, scores, ends * interval + 1_767_225_600.0))


def run(values: np.ndarray, params: DetectorParams | None = None, **kw):
    """The decisions of a series fed point by point, and its state after the last."""
    [d], states = replay([points(values, **kw)], params or DetectorParams(warmup=0))
    return d, states


def alerts_at(d) -> list[int]:
    return (np.flatnonzero(d.alert) + W - 1).tolist()


def test_windows_in_a_batch_are_scaled_as_each_alone() -> None:
    rng = np.random.default_rng(0)
    batch = rng.normal(100, 5, (50, W))
    batch[7, :-1] = 3.0  # a flat past
    together = window_features(batch, 20.0)
    for i in (0, 7, 17, 49):
        alone = window_features(batch[i], 20.0)
        np.testing.assert_array_equal(alone.z[0], together.z[i])
        assert alone.center[0] == together.center[i] and alone.scale[0] == together.scale[i]
        assert alone.flat[0] == together.flat[i] == (i == 7)


def test_a_flat_past_gives_the_model_a_step_of_two_scales_whatever_its_size() -> None:
    """A count idling at 0 and a sensor stuck at 100 have no spread: the model is not shown a million
    standard deviations (the level part, which knows the series' steps, judges the size)."""
    for before, after in ((0.0, 1.0), (100.0, 1e6)):
        f = window_features(np.r_[np.full(W - 1, before), after], 20.0)
        assert f.flat[0] and f.z[0, -1] == pytest.approx(2.0) and f.past_range[0] == 0.0


def test_a_point_decided_alone_or_inside_a_batch_gets_the_same_decision() -> None:
    rng = np.random.default_rng(1)
    series = [points(rng.normal(50, 3, 400), key=str(i)) for i in range(3)]
    [a, *_], _ = replay(series, DetectorParams(warmup=0))
    [b], _ = replay(series[:1], DetectorParams(warmup=0))
    assert a.score.tolist() == b.score.tolist() and a.alert.tolist() == b.alert.tolist()


def test_several_points_of_one_series_in_a_batch_are_decided_in_order() -> None:
    rng = np.random.default_rng(2)
    x = points(rng.normal(0, 1, 60)).inputs
    p = DetectorParams(warmup=0)
    one_by_one, together = StateMatrices.empty(1), StateMatrices.empty(1)
    one_by_one.start(0, p, 300.0)
    together.start(0, p, 300.0)
    singles = []
    for i in range(45):
        one = PointInputs(*(getattr(x, f)[i : i + 1] for f in PointInputs.__slots__))
        singles.append(decide(one_by_one, np.array([0]), one, p))
    batch = decide_in_order(together, np.zeros(45, np.intp), x, p)
    assert batch.score.tolist() == [s.score[0] for s in singles]
    np.testing.assert_array_equal(one_by_one.scalars, together.scalars)


def test_a_level_shift_alerts_once_when_it_happens_then_is_absorbed() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(50, 1, 3000)
    x[2000:] += 15  # a step of 15 noise units, and it stays
    d, _ = run(x)
    hits = alerts_at(d)
    assert any(2000 <= h <= 2002 for h in hits)
    assert len([h for h in hits if h > 2003]) <= 1  # the new level is normal soon after
    assert len([h for h in hits if 500 <= h < 2000]) <= 1  # 1,500 points of noise


def test_thresholds_adapt_per_series_so_one_default_fits_quiet_and_heavy_tailed_series() -> None:
    rng = np.random.default_rng(4)
    quiet = rng.normal(0, 1, 6000)
    heavy = rng.standard_t(2, 6000) * 10  # heavy tails: big normal excursions all the time
    for x in (quiet, heavy):
        d, _ = run(x)
        assert len([h for h in alerts_at(d) if h >= 1000]) <= 5  # after it has learnt the series


def test_a_count_that_idles_at_zero_does_not_alert_on_its_usual_ones_but_does_on_a_burst() -> None:
    """Its window's past is often all zeros: the level part judges a 1 against the series' largest
    recent step, and the tails keep its usual 1s quiet."""
    rng = np.random.default_rng(5)
    x = (rng.random(8000) < 0.03).astype(float)
    d, _ = run(x)
    assert len([h for h in alerts_at(d) if h >= 1000]) <= 2
    x[7000] = 40.0  # a burst that is not usual
    d, _ = run(x)
    assert 7000 in alerts_at(d)


def test_a_new_count_series_with_no_history_starts_quiet() -> None:
    """Cold start: a series training never saw, idling at 0 with a 1 now and then, raises nothing
    from its first point on (warm-up included): its first change is learnt, not judged."""
    rng = np.random.default_rng(6)
    x = np.zeros(3 * DAY)
    x[rng.choice(np.arange(40, 3 * DAY), 25, replace=False)] = 1.0
    d, _ = run(x, DetectorParams())
    assert alerts_at(d) == []


def test_a_stuck_value_is_found_and_named_and_a_constant_series_raises_nothing() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(20, 2, 3000)
    x[2500:2560] = x[2500]  # a sensor stuck for 60 points
    d, _ = run(x)
    stuck = [i + W - 1 for i in np.flatnonzero(d.alert) if 2500 <= i + W - 1 < 2560]
    assert stuck and PARTS[d.part[stuck[0] - W + 1]] == "flat"
    assert d.part_score[stuck[0] - W + 1] >= d.part_threshold[stuck[0] - W + 1]
    constant, _ = run(np.full(30 * DAY, 7.0))
    assert alerts_at(constant) == []  # a constant is what it is


def test_one_anomaly_raises_one_alert_not_one_per_point() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, 2400)
    x[2000:2004] += 30  # four anomalous points in a row
    d, _ = run(x)
    assert len([h for h in alerts_at(d) if 2000 <= h < 2004 + W]) == 1


def test_a_small_deviation_that_lasts_adds_up_to_an_alert_early_in_it() -> None:
    """Each point of it alone is not an alert; together they are, within the first few points."""
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, 3000)
    x[2500:2540] += 3.5  # a rise of 3.5 noise units that lasts 40 points
    d, _ = run(x)
    hits = [h for h in alerts_at(d) if 2500 <= h < 2540]
    assert hits and hits[0] < 2510


@pytest.mark.parametrize("seed", range(3))
def test_a_spike_of_20_times_the_recent_range_is_always_an_alert_even_on_a_heavy_tailed_series(seed) -> None:
    rng = np.random.default_rng(10 + seed)
    x = np.abs(rng.standard_t(1.5, 6000)) * 5 + 100  # heavy-tailed: a few huge normal excursions
    recent = x[5000 - 2000 : 5000]
    x[5000] = x[4999] + 20 * (recent.max() - recent.min())
    d, _ = run(x, DetectorParams())
    assert 5000 in alerts_at(d)


def test_a_spike_alerts_even_right_after_another_alert() -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(0, 1, 3000)
    x[2500] += 12
    x[2503] += 1000
    d, _ = run(x)
    assert {2500, 2503} <= set(alerts_at(d)) and PARTS[d.part[2503 - W + 1]] == "spike"


def test_a_daily_peak_is_normal_and_a_missing_peak_is_not() -> None:
    """Seasonality: once a day's profile predicts the series better than its level, a point is judged
    against the same phase of earlier days."""
    rng = np.random.default_rng(14)
    t = np.arange(20 * DAY)
    x = 100 + 80 * np.exp(-(((t % DAY) - 150) ** 2) / (2 * 12.0**2)) + rng.normal(0, 2, t.size)
    d, _ = run(x)
    assert [h for h in alerts_at(d) if h >= 4 * DAY] == []  # the daily peaks raise nothing
    missing = x.copy()
    day = 15 * DAY
    missing[day + 110 : day + 190] = 100 + rng.normal(0, 2, 80)  # one day without its peak
    d, _ = run(missing)
    hits = [h for h in alerts_at(d) if h >= 4 * DAY]
    assert hits and all(day + 110 <= h < day + 200 for h in hits)
    assert any(PARTS[d.part[h - W + 1]] == "season" for h in hits)


@pytest.mark.parametrize("name", ["sine", "square", "constant", "white_noise", "random_walk"])
def test_clean_signals_raise_no_alert_over_30_days_after_warm_up(name: str) -> None:
    """At the product's window (32 points); test_kpi_training.py does it through a trained VAE."""
    signals = clean_signals(days=33, interval_s=300.0, seed=0)
    d, _ = run(signals[name], DetectorParams(), window=32)
    assert [i for i in np.flatnonzero(d.alert) + 31 if i >= 3 * DAY] == []


def test_extreme_values_never_blind_a_series() -> None:
    """A first window of +-1.7e308 (finite) must not leave infinite scales behind."""
    rng = np.random.default_rng(15)
    x = rng.normal(10, 1, 2500)
    x[:W] = [1.7e308, -1.7e308] * (W // 2)
    x[2200] += 25
    d, states = run(x)
    assert np.isfinite(np.nan_to_num(states.scalars, nan=0.0)).all()
    assert np.isfinite(d.score).all() and np.isfinite(d.threshold).all()
    assert 2200 in alerts_at(d)


def test_warming_up_points_learn_but_never_alert() -> None:
    x = np.zeros(200)
    x[W + 5] = 1000.0
    d, _ = run(x, DetectorParams(warmup=30))
    assert d.warming[:30].all() and not d.alert[:30].any() and (d.score[:30] == 0).all()
    assert not d.warming[30]


def test_only_the_parts_asked_for_alert_and_state_is_bounded() -> None:
    rng = np.random.default_rng(16)
    x = rng.normal(0, 1, 2000)
    x[1600] += 40
    d, states = run(x, DetectorParams(warmup=0, parts=("flat",), spike_ratio=1e9))
    assert 1600 not in alerts_at(d)
    assert states.scalars.shape == (1, Col.SIZE) and bytes_per_row() < 6 * 1024
    d, _ = run(x)
    assert {PARTS[k] for k in d.part} <= set(PARTS)


@pytest.mark.parametrize("threshold", [3.5, 4.0, 5.0])
def test_the_part_threshold_is_the_raw_score_at_which_that_part_alone_alerts(threshold: float) -> None:
    rng = np.random.default_rng(17)
    x = rng.normal(0, 1, 2500)
    x[2300] += 12
    d, _ = run(x, DetectorParams(warmup=0, threshold=threshold, accumulate_from=1e9, season_cap=math.inf))
    for i in range(len(d)):
        part = PARTS[d.part[i]]
        if part not in ("vae", "level", "far", "drift") or d.score[i] < 1.0:
            continue
        if d.alert[i]:
            assert d.part_score[i] >= d.part_threshold[i] * (1 - 1e-9)
        else:
            assert d.part_score[i] <= d.part_threshold[i] * (1 + 1e-9)


def test_a_primed_series_starts_from_what_it_learnt_but_forgets_where_it_was() -> None:
    rng = np.random.default_rng(18)
    x = 100 + 30 * np.sin(2 * np.pi * np.arange(6 * DAY) / DAY) + rng.normal(0, 1, 6 * DAY)
    _, states = run(x)
    row = states.scalars[0]
    assert row[Col.SEEN] > 0 and not np.isnan(states.profiles[0, :DAY]).any()
    fresh = StateMatrices.empty(1)
    fresh.start(0, DetectorParams(), 300.0, states, 0)
    assert fresh.scalars[0, Col.SEEN] == row[Col.SEEN] and np.isnan(fresh.scalars[0, Col.PLAIN_LEVEL])
    np.testing.assert_array_equal(fresh.profiles[0], states.profiles[0])


def test_large_values_are_judged_as_small_ones() -> None:
    """Steps are in the series' own units: a series of values around 1e8 gets the decisions it gets
    around 1 (no spike or flat alert from a cap on its steps)."""
    rng = np.random.default_rng(19)
    x = rng.normal(10, 1, 3000)
    x[1000:1020] = x[1000]  # a 20-point stall, the same at both scales
    small, _ = run(x)
    large, _ = run(x * 1e8)
    assert alerts_at(small) == alerts_at(large)
    assert "spike" not in {PARTS[k] for k in large.part[large.alert]}


def test_a_glitch_on_a_new_series_first_day_does_not_spoil_its_season() -> None:
    rng = np.random.default_rng(20)
    t = np.arange(12 * DAY)
    x = 100 + 30 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 2, t.size)
    x[150] = 1e4
    _, clean_state = run(np.r_[x[:150], x[151:152], x[151:]])
    _, states = run(x)
    day_error = states.scalars[0, Col.SEASON_FIRST + 1]
    assert day_error < 0.75 * states.scalars[0, Col.PLAIN_ERROR]  # the daily season is in use
    assert day_error == pytest.approx(clean_state.scalars[0, Col.SEASON_FIRST + 1], rel=0.2)


def test_a_primed_series_that_restarts_on_an_outlier_raises_no_drift_or_far_alert() -> None:
    """A restart (a new worker, an eviction, a partition that moved) starts a series from its primed
    state: its drift means start at its long-run level, not at a first point that happens to be high."""
    rng = np.random.default_rng(21)
    x = rng.standard_t(3, 4000) + 50
    p = DetectorParams(warmup=0)
    [_], states = replay([points(x[:3000])], p)
    restart = np.r_[x[3000 : 3000 + W - 1], x[3000:3040].max() + 6.0, x[3000 + W :]]
    [d], _ = replay([points(restart)], p, StateFile(["s"], states))
    parts = [PARTS[k] for k in d.part[:200][d.alert[:200]]]
    assert "drift" not in parts and "far" not in parts


def test_the_band_holds_ordinary_values_and_not_a_step_and_follows_a_daily_peak() -> None:
    rng = np.random.default_rng(21)
    t = np.arange(12 * DAY)
    x = 100 + 80 * np.exp(-(((t % DAY) - 150) ** 2) / (2 * 12.0**2)) + rng.normal(0, 2, t.size)
    x[10 * DAY + 40 : 10 * DAY + 60] += 25  # a step of 12 noise units, away from the peak
    d, _ = run(x)
    last = x[W - 1 :]
    known = np.isfinite(d.lower)
    assert known[4 * DAY :].all()
    assert np.all((d.lower[known] <= d.expected[known]) & (d.expected[known] <= d.upper[known]))
    inside = (last >= d.lower) & (last <= d.upper)
    ordinary = np.ones(len(last), bool)
    ordinary[: 4 * DAY] = False
    ordinary[10 * DAY + 40 - W + 1 : 10 * DAY + 80 - W + 1] = False
    assert inside[ordinary].mean() >= 0.95
    assert not inside[10 * DAY + 40 - W + 1]  # the step's first point is outside
    peak = [i for i in range(6 * DAY, 7 * DAY) if (i + W - 1) % DAY == 150]
    assert all(d.expected[i] > 150 for i in peak)  # at the daily peak, the season expects the peak


def test_a_warming_point_has_no_band() -> None:
    d, _ = run(np.random.default_rng(5).normal(10, 1, 200), DetectorParams(warmup=50))
    assert np.isnan(d.lower[:50]).all() and np.isnan(d.expected[:50]).all()
    assert np.isfinite(d.lower[60:]).all() and (d.lower[60:] < d.upper[60:]).all()
