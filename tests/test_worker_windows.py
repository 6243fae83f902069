"""The metric windows (worker/windows.py): grid, gaps, duplicates, late points, eviction, parity with
training."""

import numpy as np
import pytest

from schemas.detect import PARTS, PointInputs, SeriesPoints, bytes_per_row, replay, window_features
from schemas.manifest import MetricPreprocessing, SeriesStats
from schemas.timeseries import scoreable, to_grid, windows_ending_at
from worker.kinds.metric import decide_windows
from worker.windows import (
    INTERVAL_GAPS,
    IntervalMismatch,
    PointOutcome,
    SeriesWindows,
    Window,
    interval_mismatch,
)

TP = ("kpi", 0)


def prep(window=4, reset_gap=3, series=None):
    return MetricPreprocessing(window=window, interval_s=60.0, reset_gap=reset_gap, series=series or {})


def test_a_series_warms_up_then_every_point_completes_a_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    outcomes = [store.push("a", 60.0 * i, float(i), TP) for i in range(6)]
    assert outcomes[:3] == [PointOutcome.WARMING] * 3
    assert [o.raw.tolist() for o in outcomes[3:]] == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
    assert outcomes[-1].slot_ts == 300.0
    assert store.warming == 0


def test_duplicates_and_late_points_are_not_scored_and_do_not_change_the_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    for i in range(4):
        store.push("a", 60.0 * i, float(i), TP)
    assert store.push("a", 180.0, 99.0, TP) is PointOutcome.DUPLICATE
    assert store.push("a", 185.0, 99.0, TP) is PointOutcome.DUPLICATE  # jitter within the slot
    assert store.push("a", 60.0, 99.0, TP) is PointOutcome.LATE
    nxt = store.push("a", 240.0, 4.0, TP)
    assert isinstance(nxt, Window) and nxt.raw.tolist() == [1, 2, 3, 4]


def test_short_gaps_are_filled_and_long_gaps_restart_the_window():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    store.push("a", 0.0, 0.0, TP)
    store.push("a", 60.0, 1.0, TP)
    w = store.push("a", 240.0, 4.0, TP)  # slots 2 and 3 missing: filled with 2, 3
    assert w.raw.tolist() == [1, 2, 3, 4]
    assert store.push("a", 240.0 + 4 * 60, 8.0, TP) is PointOutcome.WARMING  # 3 missing >= reset_gap
    assert store.resets == 1 and store.warming == 1


def test_points_without_timestamp_take_the_next_slot():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    out = [store.push("a", None, float(i), TP) for i in range(4)]
    assert out[-1].raw.tolist() == [0, 1, 2, 3]


def test_each_window_is_scaled_by_its_own_past_so_the_scaling_follows_the_series():
    store = SeriesWindows(prep(), 10)
    values = [10.0, 12.0, 14.0, 16.0, 100.0, 101.0, 99.0, 100.0, 102.0]
    out = [store.push("new", 60.0 * i, v, TP) for i, v in enumerate(values)]
    jump, settled = out[4], out[-1]
    assert isinstance(jump, Window) and isinstance(settled, Window)
    z = window_features(np.stack([jump.raw, settled.raw]), 20.0).z
    assert z[0, -1] > 10  # far from its window's past (12, 14, 16)
    assert abs(float(z[1, -1])) < 3  # 4 points later the new level is the past (99..101)


def test_least_recently_updated_series_is_evicted_and_memory_is_bounded():
    store = SeriesWindows(prep(), max_series=3)
    for key in ("a", "b", "c"):
        store.push(key, 0.0, 1.0, TP)
    store.push("a", 60.0, 1.0, TP)  # a is now the most recent
    store.push("d", 0.0, 1.0, TP)  # evicts b
    assert len(store) == 3 and store.evicted == 1
    assert store.push("b", 60.0, 1.0, TP) is PointOutcome.WARMING  # b starts over
    assert store.evicted == 2  # c went
    assert store.capacity <= 3
    assert store.bytes_per_series() == 4 * 8 + bytes_per_row()


def test_a_window_whose_series_is_evicted_before_its_decision_only_warms():
    store = SeriesWindows(prep(window=2), max_series=1)
    store.push("a", 0.0, 1.0, TP)
    in_flight = store.push("a", 60.0, 2.0, TP)
    assert isinstance(in_flight, Window)
    store.push("b", 0.0, 1.0, TP)  # a is evicted while its window waits for the model
    later = store.push("b", 60.0, 50.0, TP)
    assert isinstance(later, Window) and later.row == in_flight.row  # b took over a's row
    assert store.live([in_flight, later]).tolist() == [False, True]
    raw = np.stack([in_flight.raw, later.raw])
    decided = decide_windows(store, [in_flight, later], np.array([1e9, 1e9]), window_features(raw, 20.0))
    assert decided.warming.tolist() == [True, True] and not decided.alert.any()
    assert decided.threshold[0] == store.prep.detector.threshold  # a's gets the warming decision


def test_series_state_is_bounded_in_bytes_too_evicting_the_least_recently_updated():
    per_series = 4 * 8 + bytes_per_row()
    store = SeriesWindows(prep(), max_series=1000, max_bytes=3 * (per_series + 1000))
    for key in ("a" * 900, "b" * 900, "c" * 900):
        store.push(key, 0.0, 1.0, TP)
    assert len(store) == 3 and store.evicted == 0 and store.bytes == 3 * (per_series + 900)
    store.push("d" * 1000, 0.0, 1.0, TP)  # 100 bytes more than there is room for: a goes
    assert len(store) == 3 and store.evicted == 1 and store.bytes <= store.max_bytes
    store.push("e" * 1900, 0.0, 1.0, TP)  # a long key takes the room of two
    assert len(store) == 2 and store.evicted == 3 and store.bytes <= store.max_bytes
    for key in list(store._series):
        store._forget(key)
    assert store.bytes == 0


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
    stats = SeriesStats(interval_s=60.0)
    p = prep(window=16, reset_gap=6, series={"s": stats})
    store = SeriesWindows(p, 10)
    streamed = []
    for t, v in zip(ts, values, strict=True):
        out = store.push("s", t, v, TP)
        if isinstance(out, Window):
            streamed.append((out.slot_ts, out.raw.copy()))

    grid = to_grid(ts, values, 60.0, p.reset_gap)
    ends = scoreable(grid, p.window)
    offline = window_features(windows_ending_at(grid.values, ends, p.window), p.clip).z
    assert [t for t, _ in streamed] == (grid.slots[ends] * 60.0).tolist()
    np.testing.assert_array_equal(window_features(np.stack([w for _, w in streamed]), p.clip).z, offline)


@pytest.mark.parametrize("max_series", [1, 5])
def test_growth_never_exceeds_max_series(max_series):
    store = SeriesWindows(prep(), max_series=max_series)
    for i in range(50):
        store.push(f"s{i}", 0.0, 1.0, TP)
    assert len(store) == max_series and store.capacity == max_series


def test_one_point_stamped_far_ahead_does_not_leave_the_series_rejecting_correct_points():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    for i in range(4):
        store.push("a", 60.0 * i, float(i), TP)
    store.push("a", 60.0 * 1e6, 99.0, TP)  # a producer's clock (or ms-for-s) mistake
    assert store.push("a", 240.0, 4.0, TP) is PointOutcome.WARMING  # restarts instead of "late"
    out = [store.push("a", 60.0 * i, float(i), TP) for i in range(5, 8)]
    assert isinstance(out[-1], Window) and out[-1].raw.tolist() == [4, 5, 6, 7]
    assert store.resets == 2  # the jump ahead (a long gap), then the jump back
    assert store.push("a", 60.0 * 6, 0.0, TP) is PointOutcome.LATE  # late by less than reset_gap


def test_a_new_series_without_timestamps_starts_at_the_message_time():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    out = [store.push("a", None, float(i), TP, fallback_ts=1_800_000_000.0) for i in range(4)]
    assert out[-1].slot_ts == 1_800_000_000.0 + 3 * 60.0


def test_a_point_restarts_its_window_only_when_more_than_reset_gap_slots_back():
    store = SeriesWindows(prep(series={"a": SeriesStats(interval_s=60.0)}), 10)
    gap = store.prep.reset_gap
    last = gap + 10
    for i in range(last + 1):
        store.push("a", 60.0 * i, float(i), TP)
    assert store.push("a", 60.0 * (last - gap), 0.0, TP) is PointOutcome.LATE  # exactly reset_gap back
    assert store.resets == 0
    assert store.push("a", 60.0 * (last - gap - 1), 0.0, TP) is PointOutcome.WARMING  # one more: restart
    assert store.resets == 1


def test_worker_decisions_equal_the_offline_detector_point_for_point():
    """The worker's decisions (a point at a time, after scoring) and the offline replay of the whole
    series are one code path: the same scores, thresholds, parts and alerts, given the same model
    scores."""
    rng = np.random.default_rng(5)
    n = 600
    values = rng.normal(100, 3, n)
    values[300:] += 25  # a level shift
    values[450:470] = values[450]  # a stuck value
    ts = np.arange(n) * 60.0
    p = prep(window=16, reset_gap=6)
    store = SeriesWindows(p, 10)

    def model(w: Window) -> float:  # a stand-in graph
        return float(np.mean(window_features(w.raw, p.clip).z.astype(np.float64) ** 2))

    streamed = []
    for t, v in zip(ts, values, strict=True):
        w = store.push("s", t, v, TP)
        if isinstance(w, Window):
            streamed.append(
                decide_windows(store, [w], np.array([model(w)]), window_features(w.raw, p.clip))[0]
            )
    grid = to_grid(ts, values, 60.0, p.reset_gap)
    ends = scoreable(grid, p.window)
    f = window_features(windows_ending_at(grid.values, ends, p.window), p.clip)
    scores = np.mean(f.z.astype(np.float64) ** 2, axis=1)
    points = SeriesPoints("s", 60.0, PointInputs.of(f, scores, grid.slots[ends] * 60.0))
    [offline], _ = replay([points], p.detector)
    assert [d.score for d in streamed] == offline.score.tolist()
    assert [d.threshold for d in streamed] == offline.threshold.tolist()
    assert [d.alert for d in streamed] == offline.alert.tolist()
    assert [d.part for d in streamed] == [PARTS[k] for k in offline.part]
    assert any(d.alert and d.part == "flat" for d in streamed)  # the stuck value is found, and named


# -- a series at another interval than its grid's --------------------------------------------------


def _mismatches(store: SeriesWindows, key: str, times: np.ndarray) -> list:
    for t in times:
        store.push(key, float(t), 1.0, TP)
    return store.interval_mismatches


def test_a_five_minute_series_on_a_one_minute_grid_is_found_once_from_its_first_gaps():
    store = SeriesWindows(prep(window=32, reset_gap=32, series={"known": SeriesStats(interval_s=60.0)}), 10)
    t0 = 1_767_225_600.0
    found = _mismatches(store, "known", t0 + 300.0 * np.arange(INTERVAL_GAPS + 1))
    assert found == [IntervalMismatch("known", 300.0, 60.0)]
    _mismatches(store, "known", t0 + 300.0 * np.arange(INTERVAL_GAPS + 1, 200))
    assert len(store.interval_mismatches) == 1 and store.interval_mismatched == 1  # judged once
    # A series the bundle does not know is on the bundle's grid (60 s here) and is judged the same.
    assert _mismatches(store, "new", t0 + 300.0 * np.arange(INTERVAL_GAPS + 1))[-1].key == "new"


def test_points_finer_than_the_grid_are_found_too_though_they_are_duplicates_of_their_slot():
    store = SeriesWindows(prep(window=8, reset_gap=8), 10)  # grid 60 s
    found = _mismatches(store, "fine", 12.0 * np.arange(INTERVAL_GAPS + 1))
    assert found == [IntervalMismatch("fine", 12.0, 60.0)]


def test_jitter_missing_late_and_redelivered_points_at_the_grid_interval_are_not_a_mismatch():
    store = SeriesWindows(prep(window=8, reset_gap=8), 10)
    rng = np.random.default_rng(7)
    times = 60.0 * np.arange(40) + rng.uniform(-15, 15, 40)  # +-25 % jitter
    times = np.delete(times, [3, 9, 10, 21])  # missing points: gaps of 2 and 3 slots
    times = np.insert(times, 12, times[11])  # a redelivery
    times = np.insert(times, 8, times[2])  # a late point
    assert _mismatches(store, "jittery", times) == [] and store.interval_mismatched == 0


def test_a_series_without_timestamps_is_not_judged_and_the_rule_is_the_median_either_way():
    store = SeriesWindows(prep(window=8, reset_gap=8), 10)
    for i in range(3 * INTERVAL_GAPS):
        store.push("untimed", None, float(i), TP, fallback_ts=1_767_225_600.0 + i)
    assert store.interval_mismatches == []
    assert interval_mismatch([60.0] * 9 + [600.0] * 7, 60.0) is None  # 7 of 16 off: still 60 s
    assert interval_mismatch([89.0] * 16, 60.0) is None and interval_mismatch([90.0] * 16, 60.0) == 90.0
    assert interval_mismatch([41.0] * 16, 60.0) is None and interval_mismatch([40.0] * 16, 60.0) == 40.0
