"""Classic detectors the KPI detector is compared with, scored on the same grid and the same points.

- zscore: |x(t) - mean| / std of the previous `history` points (1,000, fewer at the start of a
  segment): the "windowed Gaussian" that real-data benchmarks use as their reference.
- hampel: |x(t) - median| / (1.4826 * MAD) of the previous W - 1 points (the detector's
  window without its last point): the Hampel identifier,
  robust to the outliers in its own history.
Nothing is tuned to make them lose.
"""

from __future__ import annotations

import numpy as np

ZSCORE_HISTORY = 1000
FLOOR = 1e-9  # of |mean| + 1: a perfectly flat history does not divide by zero


def rolling_zscore(values: np.ndarray, ends: np.ndarray, history: int = ZSCORE_HISTORY) -> np.ndarray:
    """|x[end] - mean| / std (population) of up to `history` points before each end."""
    x = np.nan_to_num(np.asarray(values, dtype=np.float64))
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) == 0:
        return np.zeros(0)
    # Sums of the history, from cumulative sums centred on the series' mean (less cancellation).
    xc = x - x.mean()
    c1 = np.concatenate([[0.0], np.cumsum(xc)])
    c2 = np.concatenate([[0.0], np.cumsum(xc * xc)])
    lo = np.maximum(0, ends - history)
    n = np.maximum(ends - lo, 1)
    mean = (c1[ends] - c1[lo]) / n
    var = np.maximum((c2[ends] - c2[lo]) / n - mean * mean, 0.0)
    std = np.maximum(np.sqrt(var), FLOOR * (np.abs(mean + x.mean()) + 1.0))
    return np.abs(xc[ends] - mean) / std


def hampel(values: np.ndarray, ends: np.ndarray, window: int, chunk: int = 4096) -> np.ndarray:
    """|x[end] - median| / (1.4826 * MAD) of the `window` - 1 points before each end (ends >= window - 1)."""
    x = np.nan_to_num(np.asarray(values, dtype=np.float64))
    ends = np.asarray(ends, dtype=np.int64)
    out = np.zeros(len(ends))
    past = window - 1
    view = np.lib.stride_tricks.sliding_window_view(x, past)
    for i in range(0, len(ends), chunk):
        e = ends[i : i + chunk]
        hist = view[e - past]  # x[end - W + 1 : end]
        med = np.median(hist, axis=1)
        mad = 1.4826 * np.median(np.abs(hist - med[:, None]), axis=1)
        out[i : i + chunk] = np.abs(x[e] - med) / np.maximum(mad, FLOOR * (np.abs(med) + 1.0))
    return out
