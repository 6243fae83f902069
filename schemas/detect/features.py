"""What one window (or a batch of them) gives the model and the detector's parts: stateless, vectorised.

The window is scaled by its own past: center = median and scale = IQR / 1.349 of its first W - 1
points (their standard deviation where the IQR is 0, floored). A level shift is therefore far from
its window's past when it happens, and part of that past W points later. Where the past is a single
value (a count idling at 0, a stuck sensor) it has no spread to measure against: the scale is then
half the last point's distance from it, so the model sees a step of two scales whatever its size
(how large the step is for that series is the level part's business, which knows the series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IQR_TO_SIGMA = 1.349
MIN_SCALE = 1e-9
MAX_RAW = 1e6  # raw part scores are capped: a value of 1e308 is an anomaly, not an overflow


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """What one window (or a batch of them) gives the model and the parts."""

    z: np.ndarray  # float32 [B, W]: the model's input
    center: np.ndarray  # float64 [B]: the median of the window's past
    scale: np.ndarray  # float64 [B]: the window's robust scale, in the series' units
    flat: np.ndarray  # bool [B]: the window's past is one value (scale is then the step's, see above)
    past_range: np.ndarray  # float64 [B]: max - min of the window's past
    last: np.ndarray  # float64 [B]: the raw last value
    prev: np.ndarray  # float64 [B]: the raw value before it


def _quantile_sorted(s: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile of each row of an already sorted [B, n] array (numpy's default)."""
    pos = q * (s.shape[1] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s.shape[1] - 1)
    return s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)


def _floor(center: np.ndarray | float) -> np.ndarray | float:
    return np.maximum(MIN_SCALE, 1e-9 * np.abs(center))


def window_features(raw: np.ndarray, clip: float) -> WindowFeatures:
    """Scale each window by its own past (rows are independent: one window alone gives exactly what
    it gives inside a batch)."""
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim == 1:
        one = _one_window(x, clip)  # the worker's case, a point at a time: a few numpy calls fewer
        if one is not None:
            return one
        x = x[None, :]
    with np.errstate(all="ignore"):  # values near +-1e308 overflow to inf: caught below
        past = np.sort(x[:, :-1], axis=1)
        center = _quantile_sorted(past, 0.5)
        scale = (_quantile_sorted(past, 0.75) - _quantile_sorted(past, 0.25)) / IQR_TO_SIGMA
        no_iqr = ~(scale > 0)
        if no_iqr.any():
            scale = np.where(no_iqr, past.std(axis=1), scale)
        flat = ~(scale > _floor(center))
        if flat.any():
            scale = np.where(flat, 0.5 * np.abs(x[:, -1] - center), scale)
        scale = np.maximum(scale, _floor(center))
        scale = np.where(np.isfinite(scale), scale, np.finfo(np.float64).max)
        z = (x - center[:, None]) / scale[:, None]
        past_range = past[:, -1] - past[:, 0]
    z = np.nan_to_num(z, nan=0.0, posinf=MAX_RAW, neginf=-MAX_RAW)
    return WindowFeatures(
        z=np.clip(z, -clip, clip).astype(np.float32),
        center=center,
        scale=scale,
        flat=flat,
        past_range=np.minimum(
            np.nan_to_num(past_range, nan=MAX_RAW, posinf=MAX_RAW), np.finfo(np.float64).max
        ),
        last=x[:, -1].copy(),
        prev=x[:, -2].copy(),
    )


def _one_window(x: np.ndarray, clip: float) -> WindowFeatures | None:
    """window_features of one ordinary window in plain float arithmetic, the same operations in the
    same order (so the same bits); None for the cases the general path handles (a past without an
    interquartile range, values so large that differences overflow)."""
    past = sorted(x[:-1].tolist())
    n = len(past)

    def quantile(q: float) -> float:
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return past[lo] + (past[hi] - past[lo]) * (pos - lo)

    center = quantile(0.5)
    scale = (quantile(0.75) - quantile(0.25)) / IQR_TO_SIGMA
    if not (0.0 < scale < 1e300 and abs(center) < 1e300 and abs(past[0]) < 1e300 and abs(past[-1]) < 1e300):
        return None
    floor = max(MIN_SCALE, 1e-9 * abs(center))
    if not scale > floor:
        return None
    z = (x - center) / scale
    last = float(x[-1])
    if not abs(last) < 1e300 or not np.isfinite(z[-1]):
        return None
    return WindowFeatures(
        z=np.clip(z, -clip, clip).astype(np.float32)[None, :],
        center=np.array([center]),
        scale=np.array([scale]),
        flat=np.zeros(1, dtype=bool),
        past_range=np.array([past[-1] - past[0]]),
        last=np.array([last]),
        prev=np.array([float(x[-2])]),
    )
