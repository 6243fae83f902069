"""The metric detector that the worker and training's offline scorer share, point by point.

A point is scored when it ends a full window of W raw values (oldest first). Two steps:

1. `window_features` (stateless, vectorised over a batch of windows): the window is scaled
   by its own past, so the scaling follows the series: center = median and scale = IQR / 1.349
   of its first W - 1 points (their standard deviation where the IQR is 0, floored). A level
   shift is therefore far from its window's past when it happens, and part of that past W
   points later. The scaled window, clipped, is the VAE's input.
2. `decide` (stateful, one call per point of a series, in time order), with two cheap parts
   beside the VAE's score:
     level  |x - center| / scale of the last point: a robust z-score against the window's past
            (where that past is one value, half the series' mean step |x(t) - x(t-1)| is the
            scale, so a count that idles at 0 does not turn every 1 into a million)
     flat   the run of (nearly) equal values ending here: a stuck sensor or a flat-lined count
   Each part's raw score becomes a *surprise* against that series' own recent scores of that
   part, by peaks over threshold (as SPOT does, with an exponential tail): per series and part,
   the `tail_quantile` t of y = log(eps + raw) and the mean excess b of y over t, both following
   the series (half-life `adapt_halflife` points); surprise = -log10 of the tail probability,
   -log10(1 - q) + (y - t) / (b ln 10). Tails, not means: a count that is 0 most of the time and
   1 now and then has a bimodal score, and its 1s are normal for it. Flat runs are heavy-tailed
   (a count idles at 0 every night): a run is compared with the longest of the series' recent
   runs instead, and reaches the threshold at `flat_ratio` times it.
   The point's score is the largest surprise, and its part the one that gave it: the alert
   names it. The threshold is `threshold` (3: a tail probability of 1 in 1,000 per part); after
   an alert it is raised to twice the alert's score and decays back (half-life
   `cooldown_halflife`), so one anomaly raises one alert, not one per point, unless it grows.
   The first `warmup` points of a series only learn; its statistics start from priors fitted in
   training.

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
TAIL_PRIOR_WEIGHT = 0.2  # the first excesses move a tail's mean excess a fifth of the way each
PARTS = ("vae", "level", "flat")
EPS = {"vae": 1e-3, "level": 0.1, "flat": 0.0}


class PartPrior(BaseModel):
    """Where a series' tail statistics of one part start, before its own points have moved them."""

    model_config = ConfigDict(frozen=True)

    quantile: float = Field(..., description="The tail_quantile of log(eps + raw score)")
    excess: float = Field(..., gt=0, description="Mean excess of log(eps + raw score) over that quantile")


class DetectorParams(BaseModel):
    """How raw window scores become a score, an alert and the part that fired (schemas/detect.py)."""

    model_config = ConfigDict(frozen=True)

    method: str = Field("peaks-over-threshold", description="See schemas/detect.py")
    threshold: float = Field(
        3.0, gt=0, description="Alert when the largest surprise reaches this: -log10 of a tail probability"
    )
    tail_quantile: float = Field(
        0.99,
        gt=0.5,
        lt=1,
        description="Each part's scores above this quantile of the series' own are its tail",
    )
    quantile_step: float = Field(
        0.2, gt=0, description="How far (in mean excesses) one point moves the quantile estimate"
    )
    adapt_halflife: float = Field(
        1000.0, gt=1, description="Half-life, in scored points, of each series' score statistics"
    )
    warmup: int = Field(10, ge=0, description="Scored points a series only learns from before it alerts")
    prior_points: float = Field(
        20.0, ge=0, description="Weight of the priors, in points, against a series' first scores"
    )
    cooldown_halflife: float = Field(
        12.0,
        gt=0,
        description="After an alert the threshold rises to twice its score and halves back in this",
    )
    excess_floor: float = Field(
        0.1, gt=0, description="Least mean excess of log scores over the quantile: no series is too quiet"
    )
    flat_tolerance: float = Field(
        1e-3, ge=0, description="Values within this share of the window's scale count as equal (flat part)"
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
    """What one window (or a batch of them) gives the model and the cheap parts."""

    z: np.ndarray  # float32 [B, W]: the model's input
    center: np.ndarray  # float64 [B]: the median of the window's past
    scale: np.ndarray  # float64 [B]: the window's robust scale, in the series' units
    step: np.ndarray  # float64 [B]: the window's mean |x(t) - x(t-1)|
    last: np.ndarray  # float64 [B]: the raw last value
    prev: np.ndarray  # float64 [B]: the raw value before it


def _quantile_sorted(s: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile of each row of an already sorted [B, n] array (numpy's default)."""
    pos = q * (s.shape[1] - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, s.shape[1] - 1)
    return s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)


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
        flat_past = ~(scale > 0)
        if flat_past.any():
            scale = np.where(flat_past, past.std(axis=1), scale)
        scale = np.maximum(scale, np.maximum(MIN_SCALE, 1e-9 * np.abs(center)))
        scale = np.where(np.isfinite(scale), scale, np.finfo(np.float64).max)
        z = (x - center[:, None]) / scale[:, None]
    z = np.nan_to_num(z, nan=0.0, posinf=MAX_RAW, neginf=-MAX_RAW)
    with np.errstate(all="ignore"):
        step = np.nan_to_num(np.abs(np.diff(x, axis=1)).mean(axis=1), nan=MAX_RAW, posinf=MAX_RAW)
    return WindowFeatures(
        z=np.clip(z, -clip, clip).astype(np.float32),
        center=center,
        step=np.minimum(step, MAX_RAW),
        scale=scale,
        last=x[:, -1].copy(),
        prev=x[:, -2].copy(),
    )


def _one_window(x: np.ndarray, clip: float) -> WindowFeatures | None:
    """window_features of one ordinary window in plain float arithmetic, the same operations in the
    same order (so the same bits); None for the cases the general path handles (a past of one value,
    values so large that differences overflow)."""
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
    scale = max(scale, max(MIN_SCALE, 1e-9 * abs(center)))
    z = (x - center) / scale
    last = float(x[-1])
    if not abs(last) < 1e300 or not np.isfinite(z[-1]):
        return None
    step = min(float(np.abs(np.diff(x[None, :], axis=1)).mean(axis=1)[0]), MAX_RAW)
    return WindowFeatures(
        z=np.clip(z, -clip, clip).astype(np.float32)[None, :],
        center=np.array([center]),
        step=np.array([step]),
        scale=np.array([scale]),
        last=np.array([last]),
        prev=np.array([float(x[-2])]),
    )


# State layout: per part, the tail quantile and mean excess of log(eps + raw) (flat: the longest
# recent run, and a spare); then the counters, the flat run, the mean step and the cooldown.
_N_PARTS = len(PARTS)
_SEEN = 2 * _N_PARTS  # scored points so far
_RUN = _SEEN + 1  # length of the current flat run
_STEP = _SEEN + 2  # the series' mean |x(t) - x(t-1)|: the level part's scale after a flat past
_COOLDOWN = _SEEN + 3  # the raised threshold after an alert (0 when none)
STATE_SIZE = _SEEN + 4


def new_state(params: DetectorParams) -> array:
    """A new series' state, starting from the priors (a part without one: quantile 0, mean excess 1)."""
    state = array("d", bytes(8 * STATE_SIZE))
    for i, part in enumerate(PARTS):
        prior = params.priors.get(part)
        state[2 * i] = prior.quantile if prior else (1.0 if part == "flat" else 0.0)
        state[2 * i + 1] = prior.excess if prior else 1.0
    return state


@dataclass(frozen=True, slots=True)
class Decision:
    score: float  # the largest surprise, -log10 of a tail probability (0 while warming up)
    threshold: float  # what the score had to reach (the cooldown may have raised it)
    part: str  # the part that gave the score
    part_score: float  # that part's raw score
    part_threshold: float  # the raw score at which that part alone would have alerted
    alert: bool
    warming: bool


def decide(
    state: array, p: DetectorParams, vae: float, center: float, scale: float, step: float, last: float,
    prev: float,
) -> Decision:  # fmt: skip
    """Score one point of a series and update its state (see the module docstring). `step` is the
    window's mean |x(t) - x(t-1)|: where a series' mean step starts."""
    seen = state[_SEEN]
    alpha = max(1.0 - 0.5 ** (1.0 / p.adapt_halflife), 1.0 / (seen + p.prior_points + 1.0))
    mean_step = step if seen == 0 else state[_STEP]
    step = abs(last - prev)
    step = min(step, MAX_RAW) if math.isfinite(step) else MAX_RAW
    mean_step += alpha * (step - mean_step)
    state[_STEP] = mean_step
    # A window whose past is one value has no spread to measure the last point against (scale is
    # its floor): half the series' mean step stands in, so a count that idles at 0 does not turn
    # each 1 into a million standard deviations.
    flat_past = scale <= max(MIN_SCALE, 1e-9 * abs(center)) * (1.0 + 1e-12)
    denom = max(0.5 * mean_step, MIN_SCALE) if flat_past else scale
    level = abs(last - center) / denom
    level = min(level, MAX_RAW) if level == level else 0.0  # NaN: inf - inf; inf is capped
    # The flat run: how many points in a row have stayed within the tolerance of the one before.
    tol = p.flat_tolerance * scale + 1e-12 * abs(last)
    run = state[_RUN]
    flat_ended = 0.0
    if step <= tol:
        run += 1.0
    else:
        flat_ended, run = run, 1.0
    state[_RUN] = run
    raws = (vae, level, run)
    best, best_i, best_thr = -math.inf, 0, 0.0
    for i, part in enumerate(PARTS):
        raw = min(max(raws[i], 0.0), MAX_RAW) if math.isfinite(raws[i]) else MAX_RAW
        if part == "flat":
            surprise, raw_thr = _flat(state, i, raw, flat_ended, p)
        else:
            surprise, raw_thr = _tail(state, i, math.log(EPS[part] + raw), p, alpha)
            raw_thr -= EPS[part]
        if part in p.parts and surprise > best:
            best, best_i, best_thr = surprise, i, raw_thr
    state[_SEEN] = seen + 1.0

    cooldown = state[_COOLDOWN]
    threshold = max(p.threshold, cooldown)
    warming = seen < p.warmup
    score = 0.0 if warming else max(best, 0.0)
    alert = not warming and score >= threshold
    # Twice the alert's score, halving back: the same anomaly, as bad as when it alerted, stays quiet
    # for a half-life; one that doubles alerts again.
    state[_COOLDOWN] = 2.0 * score if alert else (cooldown * 0.5 ** (1.0 / p.cooldown_halflife))
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


def level_score(center: float | np.ndarray, scale: float | np.ndarray, last: float | np.ndarray):
    """|last - center| / scale, capped at MAX_RAW (values near +-1e308 overflow to inf)."""
    with np.errstate(all="ignore"):
        z = np.abs(np.asarray(last, dtype=np.float64) - center) / scale
    z = np.minimum(np.nan_to_num(z, nan=0.0, posinf=MAX_RAW), MAX_RAW)
    return float(z) if z.ndim == 0 else z


def _flat(state: array, i: int, run: float, ended: float, p: DetectorParams) -> tuple[float, float]:
    """(surprise, the run length that reaches the threshold) of the current flat run, then learn.

    Runs are judged against the longest of the series' recent runs, not a mean: runs of equal
    values are heavy-tailed (a count idles at 0 for a while every night). In the other parts'
    units: 0 at the longest recent run, the threshold at flat_ratio times it.
    """
    longest = max(state[2 * i], 1.0)
    run_thr = max(float(p.flat_min_run), p.flat_ratio * longest)
    surprise = p.threshold * math.log(run * p.flat_ratio / run_thr) / math.log(p.flat_ratio)
    if ended:
        longest = max(longest, min(ended, run_thr))
    state[2 * i] = max(longest * 0.5 ** (1.0 / p.adapt_halflife), 1.0)
    return surprise, run_thr


def _tail(state: array, i: int, y: float, p: DetectorParams, alpha: float) -> tuple[float, float]:
    """(surprise, the raw score that would reach the threshold) of a log-score y, then learn y.

    Peaks over threshold (SPOT-like, with an exponential tail): above its tail_quantile t, a part's
    log-scores are taken to fall off as exp(-(y - t) / b), b their mean excess over t, so
    surprise = -log10(P(Y >= y)) = -log10(1 - q) + (y - t) / (b ln 10). t moves by stochastic
    approximation and b is an exponentially weighted mean; an excess larger than the alerting one
    is learnt as the alerting one, so an anomaly does not raise its series' tail much.
    """
    t, b = state[2 * i], max(state[2 * i + 1], p.excess_floor)
    base = -math.log10(1.0 - p.tail_quantile)
    surprise = base + (y - t) / (b * math.log(10.0))
    y_alert = t + b * math.log(10.0) * (p.threshold - base)
    excess = min(y, y_alert) - t
    if excess > 0:
        # Only a (1 - q) share of points are excesses: their mean forgets over that many fewer, and
        # starts from its prior as if it had seen a few.
        tail_alpha = min(TAIL_PRIOR_WEIGHT, alpha / (1.0 - p.tail_quantile))
        state[2 * i + 1] = b + tail_alpha * (excess - b)
    state[2 * i] = t + p.quantile_step * b * ((1.0 if y > t else 0.0) - (1.0 - p.tail_quantile))
    return surprise, math.exp(y_alert)
