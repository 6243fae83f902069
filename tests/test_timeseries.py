"""The shared metric pre-processing: grid, gap fill, segments, robust scaling, windows."""

import numpy as np
import pytest

from schemas.timeseries import (
    detect_interval,
    interpolate_gap,
    normalise,
    robust_stats,
    scoreable,
    to_grid,
    windows_ending_at,
)


def test_detect_interval_is_the_median_gap_despite_missing_points_and_jitter():
    ts = np.array([0, 60, 120, 300, 361, 420, 480], dtype=float)
    assert detect_interval(ts) == 60.0


def test_detect_interval_needs_two_timestamps():
    with pytest.raises(ValueError, match="two distinct"):
        detect_interval(np.array([5.0, 5.0]))


def test_grid_fills_short_gaps_linearly_and_marks_them_missing():
    ts = np.array([0, 60, 240, 300], dtype=float)
    grid = to_grid(ts, np.array([1.0, 2.0, 5.0, 6.0]), 60.0, reset_gap=10)
    assert grid.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert grid.missing.tolist() == [False, False, True, True, False, False]
    assert grid.run_length.tolist() == [1, 2, 3, 4, 5, 6]


def test_long_gap_starts_a_new_segment():
    ts = np.array([0, 60, 120, 600, 660], dtype=float)
    grid = to_grid(ts, np.arange(5.0), 60.0, reset_gap=5)
    assert grid.run_length[-2:].tolist() == [1, 2]
    assert np.isnan(grid.values[3:10]).all()
    assert scoreable(grid, 2).tolist() == [1, 2, 11]


def test_duplicates_keep_the_first_point_and_unsorted_input_is_sorted():
    ts = np.array([120, 0, 60, 60, 61], dtype=float)
    grid = to_grid(ts, np.array([3.0, 1.0, 2.0, 9.0, 8.0]), 60.0, reset_gap=5)
    assert grid.values.tolist() == [1.0, 2.0, 3.0]
    assert grid.duplicates == 2


def test_interpolate_gap_matches_a_straight_line():
    assert interpolate_gap(0.0, 4.0, 3).tolist() == [1.0, 2.0, 3.0]


def test_robust_stats_ignore_outliers_and_never_return_zero_scale():
    rng = np.random.default_rng(0)
    v = rng.normal(100, 5, 10_000)
    v[:50] = 1e6
    center, scale = robust_stats(v)
    assert abs(center - 100) < 0.5 and abs(scale - 5) < 0.3
    assert robust_stats(np.full(10, 3.0))[1] > 0
    sparse = np.zeros(100)
    sparse[::10] = 1.0  # mostly zeros: IQR is 0, the standard deviation takes over
    assert robust_stats(sparse)[1] == pytest.approx(0.3)


def test_normalise_clips_and_gives_float32():
    z = normalise(np.array([0.0, 10.0, 1e9]), center=10.0, scale=2.0, clip=20.0)
    assert z.dtype == np.float32 and z.tolist() == [-5.0, 0.0, 20.0]


def test_windows_end_at_the_given_points():
    x = np.arange(10.0)
    w = windows_ending_at(x, np.array([2, 9]), 3)
    assert w.tolist() == [[0.0, 1.0, 2.0], [7.0, 8.0, 9.0]]


def test_a_stray_timestamp_is_an_error_not_billions_of_slots():
    ts = np.array([0.0, 60.0, 120.0, 60.0 * 4e9])  # the last one is centuries away
    with pytest.raises(ValueError, match="far off"):
        to_grid(ts, np.ones(4), 60.0, reset_gap=10)


def test_one_timestamp_and_an_array_give_the_same_slots_halves_included():
    from schemas.timeseries import slot_of

    ts = [0.0, 29.999, 30.0, 90.0, 150.0, 1_795_449_671.5, -30.0]
    assert [slot_of(t, 60.0) for t in ts] == slot_of(np.array(ts), 60.0).tolist()


def test_detect_interval_is_not_pulled_up_by_missing_points_under_jitter():
    """A plain median said 301-302 s here, and the stretched grid dropped points as duplicates."""
    rng = np.random.default_rng(0)
    ts = np.arange(5000) * 300.0 + rng.uniform(-45, 45, 5000)
    ts = ts[rng.random(5000) > 0.3]  # 30% of the points missing
    assert detect_interval(ts) == 300.0
    assert detect_interval(np.arange(100) * 0.5) == 0.5  # sub-second data keeps its interval
    assert detect_interval(np.arange(100) * 17.0) == 17.0
