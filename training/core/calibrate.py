"""Threshold calibration on normal scores, and the summary of scores the worker needs for severity."""

from __future__ import annotations

import numpy as np

from schemas import Calibration
from schemas.manifest import CalibrationMethod

Method = CalibrationMethod  # schemas/manifest.py: the one list
REPORTED_PERCENTILES = (50, 90, 95, 99, 99.5, 99.9)


def score_summary(scores: np.ndarray) -> dict[str, object]:
    """The Calibration fields that describe the scores themselves: range, percentiles, count."""
    scores = np.asarray(scores, dtype=np.float64)
    return {
        "score_min": float(scores.min()),
        "score_max": float(scores.max()),
        "percentiles": {f"p{p:g}": float(np.percentile(scores, p)) for p in REPORTED_PERCENTILES},
        "n_scores": int(scores.size),
    }


def calibrate(
    scores: np.ndarray,
    method: Method = "percentile",
    percentile: float = 99.0,
    k: float = 3.0,
    data: str = "normal scores",
) -> Calibration:
    """A threshold from scores of normal data: their `percentile`, or mean + k * std."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("calibration needs a non-empty set of finite scores")
    if method == "percentile":
        if not 0 < percentile < 100:
            raise ValueError(f"percentile must be in (0, 100), not {percentile}")
        threshold = float(np.percentile(scores, percentile))
    elif method == "mean-std":
        threshold = float(scores.mean() + k * scores.std())
    else:
        raise ValueError(f"unknown calibration method {method!r}: use 'percentile' or 'mean-std'")
    return Calibration(
        method=method,
        percentile=percentile if method == "percentile" else None,
        k=k if method == "mean-std" else None,
        threshold=threshold,
        data=data,
        **score_summary(scores),
    )


def severity(scores: np.ndarray, cal: Calibration) -> np.ndarray:
    """Vectorised `Calibration.severity`: threshold -> 0.5, clipped to [0, 1]."""
    span = max(cal.score_max - cal.score_min, 1e-12)
    return np.clip((np.asarray(scores) - cal.threshold) / span + 0.5, 0.0, 1.0)
