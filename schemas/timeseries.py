"""Metric pre-processing that training and the worker share: grid, gap fill, robust scaling, windows.

Written once, here, so a window the worker builds point by point from a stream is the
window training built from a CSV file. numpy only (the worker never imports torch).

The grid: a point at time t (seconds) sits in slot round(t / interval). Grids are anchored
at the Unix epoch, so every reader of a series puts its points in the same slots.

- Two points in one slot: the first one seen is kept (a duplicate, or jitter finer than the grid).
- A gap shorter than `reset_gap` slots is filled linearly between its two neighbours, and
  the filled points are marked missing (training does not learn to reconstruct them, and
  a window is only scored when its last point is a real one).
- A gap of `reset_gap` slots or more starts a new segment: the window restarts, and the
  series needs W points again before it is scored ("warming").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IQR_TO_SIGMA = 1.349  # the IQR of a standard normal distribution
MIN_SCALE = 1e-6
MAX_GRID_SLOTS = 5_000_000  # a sparse series may span more slots than this only if not 50x sparse


def detect_interval(timestamps_s: np.ndarray) -> float:
    """The sampling interval of a series: the median gap between distinct timestamps, leaving out the
    gaps that span missing points, and snapped to a whole second (a whole minute when within 2%).

    A plain median drifts up when points are missing and timestamps jitter (301 s for a 300 s
    series): the grid then stretches and points start to share slots and be dropped.
    """
    distinct = np.unique(np.asarray(timestamps_s, dtype=np.float64))
    if distinct.size < 2:
        raise ValueError("a series needs at least two distinct timestamps to find its interval")
    gaps = np.diff(distinct)
    first = float(np.median(gaps))
    estimate = float(np.median(gaps[gaps < 1.5 * first]))
    if estimate >= 30:
        minute = 60.0 * round(estimate / 60.0)
        if minute and abs(estimate - minute) <= 0.02 * minute:
            return minute
    return float(round(estimate)) if estimate >= 10 else estimate


# A series whose median gap is this many times its grid interval or more (or as many times less) comes
# at another interval than the grid's: jitter and a few missing points never move a median that far,
# a 2x coarser series always does. The worker (worker/windows.py) and training's evaluate warn by it.
OFF_GRID_RATIO = 1.5


def off_grid(observed_s: float, grid_s: float) -> bool:
    """Whether points `observed_s` apart (a median gap) come at another interval than `grid_s`."""
    return not grid_s / OFF_GRID_RATIO < observed_s < grid_s * OFF_GRID_RATIO


def slot_of(timestamp_s: float | np.ndarray, interval_s: float) -> int | np.ndarray:
    """Grid slot(s) of timestamp(s): round(t / interval), halves to even, anchored at the Unix epoch.

    A single timestamp (the worker, once per point) gives an int without a trip through numpy;
    Python's round and np.rint both round halves to even, so the two agree.
    """
    if isinstance(timestamp_s, float | int):
        return round(timestamp_s / interval_s)
    return np.rint(np.asarray(timestamp_s, dtype=np.float64) / interval_s).astype(np.int64)


def interpolate_gap(before: float, after: float, missing: int) -> np.ndarray:
    """The `missing` values strictly between two real neighbours, on a straight line."""
    steps = np.arange(1, missing + 1, dtype=np.float64) / (missing + 1)
    return before + (after - before) * steps


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """(center, scale) of a series: median and IQR / 1.349, so noise of a normal series has scale ~ sigma.

    Counts that are mostly one value have IQR 0: then the standard deviation is used, and a
    constant series gets a small floor, so nothing divides by zero.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite values to take statistics from")
    center = float(np.median(v))
    q75, q25 = np.percentile(v, [75, 25])
    scale = float(q75 - q25) / IQR_TO_SIGMA
    if scale <= 0:
        scale = float(v.std())
    return center, max(scale, MIN_SCALE, 1e-6 * abs(center))


def normalise(values: np.ndarray, center: float, scale: float, clip: float) -> np.ndarray:
    """(value - center) / scale, clipped to [-clip, clip], as float32 (the model's input)."""
    z = (np.asarray(values, dtype=np.float64) - center) / scale
    return np.clip(z, -clip, clip).astype(np.float32)


@dataclass(frozen=True)
class Grid:
    """A series on its regular grid: one entry per slot from its first point to its last."""

    slots: np.ndarray  # int64, consecutive
    values: np.ndarray  # float64, gaps filled
    missing: np.ndarray  # bool: True where the value was filled in, not observed
    run_length: np.ndarray  # int64: points since the segment began, this one included (1, 2, ...)
    duplicates: int  # points dropped because their slot already had one

    def __len__(self) -> int:
        return int(self.slots.size)


def to_grid(timestamps_s: np.ndarray, values: np.ndarray, interval_s: float, reset_gap: int) -> Grid:
    """Put a series on its grid (see the module docstring); points need not be sorted."""
    ts = np.asarray(timestamps_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if ts.shape != v.shape or ts.ndim != 1 or ts.size == 0:
        raise ValueError("timestamps and values must be 1-D arrays of the same, non-zero length")
    slots = slot_of(ts, interval_s)
    order = np.argsort(slots, kind="stable")  # stable: the first point of a slot stays first
    slots, v = slots[order], v[order]
    keep = np.ones(slots.size, dtype=bool)
    keep[1:] = slots[1:] != slots[:-1]
    duplicates = int((~keep).sum())
    slots, v = slots[keep], v[keep]

    first, last = int(slots[0]), int(slots[-1])
    n = last - first + 1
    if n > MAX_GRID_SLOTS and n > 50 * slots.size:
        # One stray timestamp (a wrong year, milliseconds read as seconds) would otherwise ask for
        # billions of slots.
        raise ValueError(
            f"{slots.size} points span {n:,} grid slots of {interval_s:g} s: is one timestamp far off, "
            "or the interval wrong?"
        )
    grid_values = np.empty(n, dtype=np.float64)
    missing = np.ones(n, dtype=bool)
    run_length = np.empty(n, dtype=np.int64)
    pos = slots - first
    grid_values[pos] = v
    missing[pos] = False
    run = 0
    for i in range(pos.size):
        if i == 0:
            run = 1
        else:
            gap = int(pos[i] - pos[i - 1] - 1)
            if gap >= reset_gap:
                grid_values[pos[i - 1] + 1 : pos[i]] = np.nan
                run_length[pos[i - 1] + 1 : pos[i]] = 0
                run = 1
            else:
                if gap:
                    grid_values[pos[i - 1] + 1 : pos[i]] = interpolate_gap(v[i - 1], v[i], gap)
                    run_length[pos[i - 1] + 1 : pos[i]] = np.arange(run + 1, run + gap + 1)
                run += gap + 1
        run_length[pos[i]] = run
    return Grid(np.arange(first, last + 1, dtype=np.int64), grid_values, missing, run_length, duplicates)


def scoreable(grid: Grid, window: int) -> np.ndarray:
    """Indices whose window the worker would score: a real last point with W points of its segment."""
    return np.flatnonzero((~grid.missing) & (grid.run_length >= window))


def windows_ending_at(x: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Rows x[end - W + 1 : end + 1] for each end (a copy, shape [len(ends), W])."""
    view = np.lib.stride_tricks.sliding_window_view(x, window)
    return np.ascontiguousarray(view[np.asarray(ends) - window + 1])
