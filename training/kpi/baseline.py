"""The baseline the VAE must beat: a standard rolling z-score over the previous W points.

score(t) = |x(t) - mean(x[t-W .. t-1])| / std(x[t-W .. t-1]), on the same grid (gaps filled
the same way), scored at the same kind of points (a real point with W points of history in
its segment), and calibrated exactly as the VAE is. Nothing is tuned to make it lose.
"""

from __future__ import annotations

import numpy as np

from schemas.timeseries import scoreable
from training.kpi.windows import SeriesData

STD_FLOOR = 1e-6  # of the series' robust scale: a perfectly flat history does not divide by zero


def rolling_zscore(values: np.ndarray, ends: np.ndarray, window: int, floor: float) -> np.ndarray:
    """|x[end] - mean| / std of the `window` points before each end (population std, floored)."""
    x = np.asarray(values, dtype=np.float64)
    if len(ends) == 0:
        return np.zeros(0)
    ends = np.asarray(ends)
    hist = np.lib.stride_tricks.sliding_window_view(x, window)[ends - window]  # x[end-W : end]
    mean = hist.mean(axis=1)
    std = np.maximum(hist.std(axis=1), floor)
    return np.abs(x[ends] - mean) / std


def baseline_scores(s: SeriesData, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid indices, scores) of a series: every real point with W earlier points in its segment."""
    ends = scoreable(s.grid, window + 1)
    return ends, rolling_zscore(s.grid.values, ends, window, STD_FLOOR * s.scale)
