"""The metric detector that the worker and training's offline scorer share, point by point.

A point is scored when it ends a full window of W raw values (oldest first). Two steps:

1. `window_features` (stateless, vectorised over a batch of windows): the window is scaled
   by its own past, so the scaling follows the series: center = median and scale = IQR / 1.349
   of its first W - 1 points (their standard deviation where the IQR is 0, floored). A level
   shift is therefore far from its window's past when it happens, and part of that past W
   points later. The scaled window, clipped, is the VAE's input, and gives a cheap part:
     level  |z| of the last point: a robust z-score against the window's past
2. `decide` (stateful, one call per point of a series, in time order). One more part:
     flat   the run of (nearly) equal values ending here: a stuck sensor or a flat-lined count
   Each part's raw score becomes a *surprise* against that series' own recent scores of that
   part: per series and part, an exponentially weighted mean and standard deviation of
   log(eps + raw) (half-life `adapt_halflife` points), so surprise = (log(eps + raw) - mean) / std.
   Flat runs are heavy-tailed instead (a count idles at 0 every night): a run is compared with
   the longest of the series' recent runs, and reaches the threshold at `flat_ratio` times it.
   The point's score is the largest surprise, and its part the one that gave it: the alert
   names it. The threshold is `threshold` standard deviations; after an alert it is raised to
   the alert's score and decays back (half-life `cooldown_halflife`), so one anomaly raises one
   alert, not one per point, unless it grows. The first `warmup` points of a series only learn.

The state of a series is a short array of floats (`new_state`); nothing grows with time.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

IQR_TO_SIGMA = 1.349
MIN_SCALE = 1e-9
MAX_RAW = 1e6  # raw part scores are capped: a value of 1e308 is an anomaly, not an overflow
PARTS = ("vae", "level", "flat")
EPS = {"vae": 1e-3, "level": 0.1, "flat": 0.0}


class PartPrior(BaseModel):
    """Where a series' statistics of one part start, before its own points have moved them."""

    model_config = ConfigDict(frozen=True)

    mean: float = Field(..., description="Mean of log(eps + raw score)")
    std: float = Field(..., gt=0, description="Standard deviation of log(eps + raw score)")


class DetectorParams(BaseModel):
    """How raw window scores become a score, an alert and the part that fired (schemas/detect.py)."""

    model_config = ConfigDict(frozen=True)

    method: str = Field("adaptive-surprise", description="See schemas/detect.py")
    threshold: float = Field(2.7, gt=0, description="Alert when the largest surprise reaches this (stds)")
    adapt_halflife: float = Field(
        1000.0, gt=1, description="Half-life, in scored points, of each series' score statistics"
    )
    warmup: int = Field(10, ge=0, description="Scored points a series only learns from before it alerts")
    prior_points: float = Field(
        20.0, ge=0, description="Weight of the priors, in points, against a series' first scores"
    )
    cooldown_halflife: float = Field(
        12.0, gt=0, description="After an alert the threshold rises to its score and halves back in this"
    )
    sigma_floor: float = Field(0.25, gt=0, description="Least std of log scores: no series is too quiet")
    flat_tolerance: float = Field(
        1e-3, ge=0, description="Values within this share of the series' scale count as equal (flat part)"
    )
    flat_min_run: int = Field(8, ge=2, description="A flat run shorter than this never alerts")
    flat_ratio: float = Field(
        2.5, gt=1, description="A flat run alerts when this many times the series' longest recent run"
    )
    parts: tuple[str, ...] = Field(PARTS, description="Parts that may alert")
    priors: dict[str, PartPrior] = Field(
        default_factory=dict, description="Starting statistics per part (from training's validation scores)"
    )


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """What one window (or a batch of them) gives the model and the level part."""

    z: np.ndarray  # float32 [B, W]: the model's input
    level: np.ndarray  # float64 [B]
    scale: np.ndarray  # float64 [B]: the window's robust scale, in the series' units
    last: np.ndarray  # float64 [B]: the raw last value
    prev: np.ndarray  # float64 [B]: the raw value before it


def _quantile_sorted(s: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile of each row of an already sorted [B, n] array (numpy's default)."""
    pos = q * (s.shape[1] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s.shape[1] - 1)
    return s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)


def window_features(raw: np.ndarray, clip: float) -> WindowFeatures:
    """Scale each window by its own past and take the level part's raw score (rows are independent:
    one window alone gives exactly what it gives inside a batch)."""
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    with np.errstate(all="ignore"):  # values near +-1e308 overflow to inf: caught below
        past = np.sort(x[:, :-1], axis=1)
        center = _quantile_sorted(past, 0.5)
        scale = (_quantile_sorted(past, 0.75) - _quantile_sorted(past, 0.25)) / IQR_TO_SIGMA
        flat_past = ~(scale > 0)
        if flat_past.any():
            scale = np.where(flat_past, past.std(axis=1), scale)
        scale = np.maximum(scale, np.maximum(MIN_SCALE, 1e-9 * np.abs(center)))
        scale = np.where(np.isfinite(scale), scale, np.finfo(np.float64).max)
        z = (x - center[:, None]) / scale[:, None]
    z = np.nan_to_num(z, nan=0.0, posinf=MAX_RAW, neginf=-MAX_RAW)
    level = np.minimum(np.abs(z[:, -1]), MAX_RAW)
    return WindowFeatures(
        z=np.clip(z, -clip, clip).astype(np.float32),
        level=level,
        scale=scale,
        last=x[:, -1].copy(),
        prev=x[:, -2].copy(),
    )


# State layout: per part (mean, var) of log(eps + raw) (flat: the longest recent run, and a spare);
# then the counters and the flat run.
_N_PARTS = len(PARTS)
_SEEN = 2 * _N_PARTS  # scored points so far
_RUN = _SEEN + 1  # length of the current flat run
_LONG_SCALE = _SEEN + 2  # slow average of the window scale: what "nearly equal" is measured against
_COOLDOWN = _SEEN + 3  # the raised threshold after an alert (0 when none)
STATE_SIZE = _SEEN + 4


def new_state(params: DetectorParams) -> array:
    """A new series' state, starting from the priors (a part without one starts at mean 0, std 1)."""
    state = array("d", bytes(8 * STATE_SIZE))
    for i, part in enumerate(PARTS):
        prior = params.priors.get(part)
        state[2 * i] = prior.mean if prior else (1.0 if part == "flat" else 0.0)
        state[2 * i + 1] = (prior.std if prior else 1.0) ** 2
    return state


@dataclass(frozen=True, slots=True)
class Decision:
    score: float  # the largest surprise, in std units (0 while warming up)
    threshold: float  # what the score had to reach (the cooldown may have raised it)
    part: str  # the part that gave the score
    part_score: float  # that part's raw score
    part_threshold: float  # the raw score at which that part alone would have alerted
    alert: bool
    warming: bool


def decide(
    state: array, p: DetectorParams, vae: float, level: float, scale: float, last: float, prev: float
) -> Decision:
    """Score one point of a series and update its state (see the module docstring)."""
    seen = state[_SEEN]
    alpha = max(1.0 - 0.5 ** (1.0 / p.adapt_halflife), 1.0 / (seen + p.prior_points + 1.0))
    # The flat run: how many points in a row have stayed within the tolerance of the one before.
    long_scale = state[_LONG_SCALE]
    long_scale = scale if seen == 0 else long_scale + alpha * (scale - long_scale)
    state[_LONG_SCALE] = long_scale
    tol = p.flat_tolerance * long_scale + 1e-12 * abs(last)
    run = state[_RUN]
    flat_ended = 0.0
    if abs(last - prev) <= tol:
        run += 1.0
    else:
        flat_ended, run = run, 1.0
    state[_RUN] = run
    raws = (vae, level, run)
    best, best_i, best_thr = -math.inf, 0, 0.0
    decay = 0.5 ** (1.0 / p.adapt_halflife)
    for i, part in enumerate(PARTS):
        raw = min(max(raws[i], 0.0), MAX_RAW) if math.isfinite(raws[i]) else MAX_RAW
        if part == "flat":
            # Runs are judged against the longest of the series' recent runs, not a mean: runs of
            # equal values are heavy-tailed (a count series idles at 0 for a while every night).
            longest = max(state[2 * i], 1.0)
            raw_thr = max(float(p.flat_min_run), p.flat_ratio * longest)
            # In the same units as the other parts: 0 at the longest recent run, the threshold
            # at flat_ratio times it (one "std" is a 1/threshold share of log(flat_ratio)).
            surprise = p.threshold * math.log(raw * p.flat_ratio / raw_thr) / math.log(p.flat_ratio)
            if flat_ended:
                longest = max(longest, min(flat_ended, raw_thr))
            state[2 * i] = max(longest * decay, 1.0)
        else:
            mean, var = state[2 * i], state[2 * i + 1]
            std = max(math.sqrt(var), p.sigma_floor)
            y = math.log(EPS[part] + raw)
            surprise = (y - mean) / std
            raw_thr = math.exp(mean + p.threshold * std) - EPS[part]
            _learn(state, i, min(y, mean + p.threshold * std), alpha)
        if part in p.parts and surprise > best:
            best, best_i, best_thr = surprise, i, raw_thr
    state[_SEEN] = seen + 1.0

    cooldown = state[_COOLDOWN]
    threshold = max(p.threshold, cooldown)
    warming = seen < p.warmup
    score = 0.0 if warming else max(best, 0.0)
    alert = not warming and score >= threshold
    state[_COOLDOWN] = score if alert else (cooldown * 0.5 ** (1.0 / p.cooldown_halflife))
    if alert and PARTS[best_i] == "flat":
        # The run is known now: it alerts again only if it lasts flat_ratio times longer, so a series
        # that is flat by nature costs a few alerts in all, not one per point.
        state[2 * best_i] = run
    return Decision(
        score=score,
        threshold=threshold,
        part=PARTS[best_i],
        part_score=float(raws[best_i]),
        part_threshold=best_thr,
        alert=alert,
        warming=warming,
    )


def _learn(state: array, i: int, y: float, alpha: float) -> None:
    """Exponentially weighted mean and variance (West's incremental form)."""
    mean, var = state[2 * i], state[2 * i + 1]
    diff = y - mean
    incr = alpha * diff
    state[2 * i] = mean + incr
    state[2 * i + 1] = (1.0 - alpha) * (var + diff * incr)
