"""The metric detector shared by the worker and the offline scorer (schemas/detect.py): scaling that
follows the series, thresholds that adapt per series, the parts beside the VAE, bounded state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from schemas.detect import PARTS, STATE_SIZE, DetectorParams, decide, new_state, window_features

W = 16


def run(values: np.ndarray, params: DetectorParams | None = None, model=None):
    """Every decision of a series fed point by point (model score: the mean square of the window)."""
    p = params or DetectorParams(warmup=0)
    state = new_state(p)
    out = []
    for end in range(W, len(values) + 1):
        f = window_features(values[end - W : end], 20.0)
        score = float(np.mean(f.z.astype(np.float64) ** 2)) if model is None else model(f)
        args = (float(f.center[0]), float(f.scale[0]), float(f.step[0]), float(f.last[0]), float(f.prev[0]))
        out.append(decide(state, p, score, *args))
    return out, state


def alerts_at(decisions) -> list[int]:
    return [i + W - 1 for i, d in enumerate(decisions) if d.alert]


def test_windows_in_a_batch_are_scaled_as_each_alone() -> None:
    rng = np.random.default_rng(0)
    batch = rng.normal(100, 5, (50, W))
    together = window_features(batch, 20.0)
    for i in (0, 17, 49):
        alone = window_features(batch[i], 20.0)
        np.testing.assert_array_equal(alone.z[0], together.z[i])
        assert alone.center[0] == together.center[i] and alone.scale[0] == together.scale[i]


def test_a_level_shift_alerts_once_when_it_happens_then_is_absorbed() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(50, 1, 1500)
    x[1000:] += 15  # a step of 15 noise units, and it stays
    decisions, _ = run(x)
    hits = alerts_at(decisions)
    assert any(1000 <= h <= 1002 for h in hits)
    assert not [h for h in hits if h > 1000 + 2 * W]  # the new level is normal a couple of windows on
    assert len([h for h in hits if h < 1000]) <= 3  # 1,000 points of noise: a tail of 1e-3 per part


def test_thresholds_adapt_per_series_so_one_default_fits_quiet_and_noisy_series() -> None:
    rng = np.random.default_rng(2)
    quiet = rng.normal(0, 1, 3000)
    heavy = rng.standard_t(2, 3000) * 10  # heavy tails: big normal excursions all the time
    for x in (quiet, heavy):
        decisions, _ = run(x)
        assert len(alerts_at(decisions[500:])) / 2500 < 0.01  # after it has learnt the series


def test_a_count_that_idles_at_zero_does_not_alert_on_its_usual_ones() -> None:
    """Its window's past is often all zeros (scale 0): the level part's floor (half the mean step)
    and tails, not means, keep each 1 from looking like a million standard deviations."""
    rng = np.random.default_rng(3)
    x = (rng.random(6000) < 0.03).astype(float)
    decisions, _ = run(x)
    assert len(alerts_at(decisions[1000:])) < 10
    x[5000] = 40.0  # a burst that is not usual
    decisions, _ = run(x)
    assert 5000 in alerts_at(decisions)


def test_a_stuck_value_is_found_and_named_and_a_flat_series_costs_few_alerts() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(20, 2, 2000)
    x[1500:1560] = x[1500]  # a sensor stuck for 60 points
    decisions, _ = run(x)
    stuck = [d for i, d in zip(range(W - 1, 2000), decisions, strict=False) if d.alert and 1500 <= i < 1560]
    assert stuck and stuck[0].part == "flat" and stuck[0].part_score >= stuck[0].part_threshold
    constant, _ = run(np.full(4000, 7.0))
    assert 1 <= len(alerts_at(constant)) <= 12  # re-alerts only as the run grows by flat_ratio


def test_one_anomaly_raises_one_alert_not_one_per_point() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 1200)
    x[1000:1004] += 30  # four anomalous points in a row
    decisions, _ = run(x)
    assert len([h for h in alerts_at(decisions) if 1000 <= h < 1004 + W]) == 1


def test_extreme_values_never_blind_a_series() -> None:
    """A first window of +-1.7e308 (finite) must not leave infinite scales behind."""
    rng = np.random.default_rng(6)
    x = rng.normal(10, 1, 1500)
    x[:W] = [1.7e308, -1.7e308] * (W // 2)
    x[1200] += 25
    decisions, state = run(x)
    assert all(math.isfinite(v) for v in state)
    assert all(math.isfinite(d.score) and math.isfinite(d.threshold) for d in decisions)
    assert 1200 in alerts_at(decisions)


def test_warming_up_points_learn_but_never_alert() -> None:
    p = DetectorParams(warmup=30)
    x = np.zeros(200)
    x[W + 5] = 1000.0
    decisions, _ = run(x, p)
    assert all(d.warming and not d.alert and d.score == 0.0 for d in decisions[:30])
    assert not decisions[30].warming


def test_only_the_parts_asked_for_alert_and_state_is_bounded() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 800)
    x[600] += 40
    only_flat = DetectorParams(warmup=0, parts=("flat",))
    decisions, state = run(x, only_flat)
    assert 600 not in alerts_at(decisions)
    assert len(state) == STATE_SIZE and STATE_SIZE <= 16
    assert {d.part for d in run(x)[0]} <= set(PARTS)


@pytest.mark.parametrize("threshold", [2.0, 3.0, 4.0])
def test_the_part_threshold_is_the_raw_score_at_which_that_part_alone_alerts(threshold: float) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(0, 1, 1500)
    x[1400] += 12
    decisions, _ = run(x, DetectorParams(warmup=0, threshold=threshold))
    for d in decisions:
        if d.alert and d.part != "flat" and d.threshold == threshold:
            assert d.part_score >= d.part_threshold * (1 - 1e-9)
        elif not d.alert and d.score < threshold and d.part != "flat":
            assert d.part_score <= d.part_threshold * (1 + 1e-9)
