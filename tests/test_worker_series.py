"""Per-series windows in the worker: grid, gaps, duplicates, late points, eviction, parity with training."""

import numpy as np
import pytest

from schemas.manifest import MetricPreprocessing, SeriesStats
from schemas.timeseries import normalise, scoreable, to_grid, windows_ending_at
from worker.series import PointOutcome, SeriesWindows, Window

TP = ("kpi", 0)


def prep(window=4, reset_gap=3, series=None):
    return MetricPreprocessing(window=window, interval_s=60.0, reset_gap=reset_gap, series=series or {})


def test_a_series_warms_up_then_every_point_completes_a_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    outcomes = [store.push("a", 60.0 * i, float(i), TP) for i in range(6)]
    assert outcomes[:3] == [PointOutcome.WARMING] * 3
    assert [o.values.tolist() for o in outcomes[3:]] == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
    assert outcomes[-1].slot_ts == 300.0
    assert store.warming == 0


def test_duplicates_and_late_points_are_not_scored_and_do_not_change_the_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    for i in range(4):
        store.push("a", 60.0 * i, float(i), TP)
    assert store.push("a", 180.0, 99.0, TP) is PointOutcome.DUPLICATE
    assert store.push("a", 185.0, 99.0, TP) is PointOutcome.DUPLICATE  # jitter within the slot
    assert store.push("a", 60.0, 99.0, TP) is PointOutcome.LATE
    nxt = store.push("a", 240.0, 4.0, TP)
    assert isinstance(nxt, Window) and nxt.values.tolist() == [1, 2, 3, 4]


def test_short_gaps_are_filled_and_long_gaps_restart_the_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    store.push("a", 0.0, 0.0, TP)
    store.push("a", 60.0, 1.0, TP)
    w = store.push("a", 240.0, 4.0, TP)  # slots 2 and 3 missing: filled with 2, 3
    assert w.values.tolist() == [1, 2, 3, 4]
    assert store.push("a", 240.0 + 4 * 60, 8.0, TP) is PointOutcome.WARMING  # 3 missing >= reset_gap
    assert store.resets == 1 and store.warming == 1


def test_points_without_timestamp_take_the_next_slot():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    out = [store.push("a", None, float(i), TP) for i in range(4)]
    assert out[-1].values.tolist() == [0, 1, 2, 3]


def test_unknown_series_are_scaled_by_their_first_window():
    store = SeriesWindows(prep(), 10)
    out = [store.push("new", 60.0 * i, v, TP) for i, v in enumerate([10.0, 12.0, 14.0, 16.0, 100.0])]
    first, second = out[3], out[4]
    assert isinstance(first, Window) and abs(float(np.median(first.values))) < 1e-6
    assert second.values[-1] > 10  # the jump is large on the first window's scale


def test_least_recently_updated_series_is_evicted_and_memory_is_bounded():
    store = SeriesWindows(prep(), max_series=3)
    for key in ("a", "b", "c"):
        store.push(key, 0.0, 1.0, TP)
    store.push("a", 60.0, 1.0, TP)  # a is now the most recent
    store.push("d", 0.0, 1.0, TP)  # evicts b
    assert len(store) == 3 and store.evicted == 1
    assert store.push("b", 60.0, 1.0, TP) is PointOutcome.WARMING  # b starts over
    assert store.evicted == 2  # c went
    assert store._values.shape[0] <= 3
    assert store.bytes_per_series() == 4 * 8


def test_series_of_partitions_given_away_are_forgotten():
    store = SeriesWindows(prep(), 10)
    store.push("a", 0.0, 1.0, ("kpi", 0))
    store.push("b", 0.0, 1.0, ("kpi", 1))
    assert store.drop_partitions({("kpi", 1)}) == 1
    assert len(store) == 1 and store.warming == 1


def test_streaming_windows_equal_the_windows_training_scores():
    """Fed point by point (gaps, jitter, a long gap), the worker scores exactly the windows of to_grid."""
    rng = np.random.default_rng(3)
    n = 400
    ts = np.arange(n) * 60.0 + rng.uniform(-20, 20, n)
    keep = rng.random(n) > 0.15
    keep[200:210] = False  # a long gap: a new segment
    ts, values = ts[keep], rng.normal(50, 5, n)[keep]
    stats = SeriesStats(center=50.0, scale=5.0, interval_s=60.0)
    p = prep(window=16, reset_gap=6, series={"s": stats})
    store = SeriesWindows(p, 10)
    streamed = []
    for t, v in zip(ts, values, strict=True):
        out = store.push("s", t, v, TP)
        if isinstance(out, Window):
            streamed.append((out.slot_ts, out.values))

    grid = to_grid(ts, values, 60.0, p.reset_gap)
    ends = scoreable(grid, p.window)
    offline = windows_ending_at(normalise(np.nan_to_num(grid.values), 50.0, 5.0, p.clip), ends, p.window)
    assert [t for t, _ in streamed] == (grid.slots[ends] * 60.0).tolist()
    np.testing.assert_allclose(np.stack([w for _, w in streamed]), offline, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("max_series", [1, 5])
def test_growth_never_exceeds_max_series(max_series):
    store = SeriesWindows(prep(), max_series=max_series)
    for i in range(50):
        store.push(f"s{i}", 0.0, 1.0, TP)
    assert len(store) == max_series and store._values.shape[0] == max_series


def test_one_point_stamped_far_ahead_does_not_leave_the_series_rejecting_correct_points():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    for i in range(4):
        store.push("a", 60.0 * i, float(i), TP)
    store.push("a", 60.0 * 1e6, 99.0, TP)  # a producer's clock (or ms-for-s) mistake
    assert store.push("a", 240.0, 4.0, TP) is PointOutcome.WARMING  # restarts instead of "late"
    out = [store.push("a", 60.0 * i, float(i), TP) for i in range(5, 8)]
    assert isinstance(out[-1], Window) and out[-1].values.tolist() == [4, 5, 6, 7]
    assert store.resets == 2  # the jump ahead (a long gap), then the jump back
    assert store.push("a", 60.0 * 6, 0.0, TP) is PointOutcome.LATE  # late by less than reset_gap


def test_a_new_series_without_timestamps_starts_at_the_message_time():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    out = [store.push("a", None, float(i), TP, fallback_ts=1_800_000_000.0) for i in range(4)]
    assert out[-1].slot_ts == 1_800_000_000.0 + 3 * 60.0


def test_a_point_restarts_its_window_only_when_more_than_reset_gap_slots_back():
    store = SeriesWindows(prep(series={"a": SeriesStats(center=0.0, scale=1.0, interval_s=60.0)}), 10)
    gap = store.prep.reset_gap
    last = gap + 10
    for i in range(last + 1):
        store.push("a", 60.0 * i, float(i), TP)
    assert store.push("a", 60.0 * (last - gap), 0.0, TP) is PointOutcome.LATE  # exactly reset_gap back
    assert store.resets == 0
    assert store.push("a", 60.0 * (last - gap - 1), 0.0, TP) is PointOutcome.WARMING  # one more: restart
    assert store.resets == 1


def test_offline_prediction_scales_an_unseen_series_as_the_worker_does():
    """A first segment shorter than W, then a long gap: both take the stats of the first full window."""
    from training.kpi.offline import first_window_stats

    p = prep(window=4, reset_gap=3)
    ts = np.array([0, 1, 2, 10, 11, 12, 13, 14], dtype=float) * 60.0  # 3 points, a gap of 7, then 5
    values = np.array([1000.0, 1000.0, 1000.0, 10.0, 12.0, 17.0, 11.0, 30.0])
    store = SeriesWindows(p, 10)
    pushed = [store.push("new", t, v, TP) for t, v in zip(ts, values, strict=True)]
    windows = [w for w in pushed if isinstance(w, Window)]
    center, scale = first_window_stats(to_grid(ts, values, p.interval_s, p.reset_gap), p.window)
    expected = normalise(values[3:7], center, scale, p.clip)
    assert np.allclose(windows[0].values, expected)
    assert center == pytest.approx(11.5)  # the median of 10, 12, 17, 11; the 1000s are another segment
