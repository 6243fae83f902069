"""The detector's decision for a batch of points, each of a different series, vectorised over the batch.

`decide` reads each point's series row from the state matrices, scores the point by every part,
updates the row and returns what was decided. Points of one series must be decided in time order,
one call after another (`decide_in_order` splits a batch that holds several points of one series).
The arithmetic is elementwise per row, so a point gets the same result alone or inside any batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from schemas.detect.features import MAX_RAW, MIN_SCALE, WindowFeatures
from schemas.detect.params import EPS, EXCESS_FLOOR_FACTOR, PARTS, SEASONS, TAIL_PARTS, DetectorParams
from schemas.detect.state import BIN_OFFSETS, Col, StateMatrices, season_col

LN10 = math.log(10.0)
_LARGEST = np.finfo(np.float64).max
_F32 = float(np.finfo(np.float32).max) / 2  # profiles and scales are stored as float32
PART_INDEX = {p: i for i, p in enumerate(PARTS)}
PLAIN_HALFLIFE = 1000.0  # points: the memory of the prediction errors a season is chosen by
HUBER = 4.0  # updates of levels, profiles and scales are clipped to this many scales
_SMOOTH = 7  # a profile's scale is averaged over up to this many bins either side


@dataclass(frozen=True, slots=True)
class PointInputs:
    """What the detector needs of each point: its window's features, the model's score, its grid time."""

    vae: np.ndarray  # float64 [n]: the graph's score of the window
    center: np.ndarray
    scale: np.ndarray
    flat: np.ndarray
    past_range: np.ndarray
    last: np.ndarray
    prev: np.ndarray
    slot_ts: np.ndarray  # float64 [n]: the grid time of the point, seconds since the epoch

    @classmethod
    def of(
        cls, f: WindowFeatures, vae: np.ndarray, slot_ts: np.ndarray, idx: np.ndarray | slice = slice(None)
    ) -> PointInputs:
        """The inputs of the points `idx` of a series (or a batch) from its features and scores."""
        return cls(
            np.asarray(vae, dtype=np.float64)[idx], f.center[idx], f.scale[idx], f.flat[idx],
            f.past_range[idx], f.last[idx], f.prev[idx], np.asarray(slot_ts, dtype=np.float64)[idx],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    """One point's decision (an alert names its part)."""

    score: float  # the point's score: -log10 of a tail probability (0 while warming up)
    threshold: float  # what the score had to reach (the cooldown may have raised it)
    part: str  # the part that gave the score
    part_score: float  # that part's raw score
    part_threshold: float  # the raw score at which that part alone would have alerted
    alert: bool
    warming: bool
    expected: float | None = None  # the band (Decisions): None where unknown
    lower: float | None = None
    upper: float | None = None
    reference: float | None = None  # the evidence (Decisions): None where unknown
    unit: float | None = None
    period_s: float | None = None
    longest_run: float | None = None


@dataclass(frozen=True, slots=True)
class Decisions:
    """The decisions of a batch, as arrays in the batch's order."""

    score: np.ndarray
    threshold: np.ndarray
    part: np.ndarray  # int8 index into PARTS
    part_score: np.ndarray
    part_threshold: np.ndarray
    alert: np.ndarray
    warming: np.ndarray
    # The band (series' units; NaN where unknown): the value expected and the range around it that the
    # level part (or the season, where one is in use) accepts without alerting on its own.
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    # The firing part's evidence (NaN where it has none): the value it measured the point against and
    # its unit of deviation, in the series' units (level: the window's median and scale; season: the
    # seasonal prediction and scale; drift: the long mean and spread, the short mean being part_score
    # units away; far: the long-run level and spread; flat: the stuck value; spike: the window's median
    # and its recent range); the period of the season in use (seconds); the longest recent run (points)
    # a flat run is judged against.
    reference: np.ndarray
    unit: np.ndarray
    period_s: np.ndarray
    longest_run: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, i: int) -> Decision:
        return Decision(
            float(self.score[i]), float(self.threshold[i]), PARTS[int(self.part[i])],
            float(self.part_score[i]), float(self.part_threshold[i]), bool(self.alert[i]),
            bool(self.warming[i]), *(_known(getattr(self, f)[i]) for f in _OPTIONAL),
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: list[Decisions], order: np.ndarray) -> Decisions:
        """Decisions made in several calls, put back in the batch's order (`order[k]`: the batch
        position of the k-th decision made)."""
        out = {}
        for name in cls.__slots__:
            values = np.concatenate([getattr(p, name) for p in parts])
            arranged = np.empty_like(values)
            arranged[order] = values
            out[name] = arranged
        return cls(**out)


_OPTIONAL = ("expected", "lower", "upper", "reference", "unit", "period_s", "longest_run")


def _halflife_rate(halflife: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife)


def decide(states: StateMatrices, rows: np.ndarray, x: PointInputs, p: DetectorParams) -> Decisions:
    """Decide one point of each of the series `rows` (distinct) and update their rows."""
    rows = np.asarray(rows, dtype=np.intp)
    st = states.scalars[rows]  # a copy: written back at the end
    n = len(rows)
    seen = st[:, Col.SEEN].copy()
    alpha = np.maximum(_halflife_rate(p.adapt_halflife), 1.0 / (seen + p.prior_points + 1.0))
    last, prev, center = x.last, x.prev, x.center
    with np.errstate(all="ignore"):
        step = np.abs(last - prev)
    step = np.where(np.isfinite(step), step, _LARGEST)  # in the series' own units: not capped
    event_bar, alert_bar = st[:, Col.EVENT_BAR].copy(), st[:, Col.ALERT_BAR].copy()
    bar = np.maximum(p.event_level, event_bar)  # what an event must reach now
    threshold = np.maximum(p.threshold, alert_bar)  # what an alert must reach now
    surprise = np.full((len(PARTS), n), -np.inf)
    raw = np.zeros((len(PARTS), n))
    part_thr = np.full((len(PARTS), n), np.inf)
    band_thr = np.full((len(PARTS), n), np.inf)

    # level: the point against its window's past, on a scale no smaller than the series' typical one;
    # after a flat past, against the series' largest recent step (unknown before its first change)
    step_max = st[:, Col.STEP_MAX].copy()
    typical = st[:, Col.TYPICAL_SCALE].copy()
    s_w = np.where(x.flat, 0.0, x.scale)
    with np.errstate(all="ignore"):
        denom = np.where(x.flat, 0.5 * step_max, np.maximum(s_w, p.level_scale_floor * typical))
        level = np.where(denom > 0, np.abs(last - center) / denom, 0.0)
    decay_step = 0.5 ** (1.0 / p.adapt_halflife)
    st[:, Col.STEP_MAX] = np.maximum(step, step_max * decay_step)
    ok = ~x.flat & np.isfinite(s_w)
    grow = np.where(typical > 0, typical + alpha * (np.minimum(s_w, 10.0 * typical) - typical), s_w)
    st[:, Col.TYPICAL_SCALE] = np.where(ok, grow, typical)
    raw[PART_INDEX["level"]] = level
    raw[PART_INDEX["vae"]] = x.vae

    # seasons: a level and a profile per candidate (Holt-Winters, robust updates); the best that
    # predicts clearly better than the plain level is used
    floor = np.maximum(0.1 * st[:, Col.TYPICAL_SCALE], 1e-12)
    plain_err = _plain_level(st, last, floor, p)
    # The plain error is an average that starts at 0: `warm` undoes its start-up bias (for the
    # seasons' first values, which are clipped to a few of it).
    warm = np.maximum(1.0 - (1.0 - _halflife_rate(PLAIN_HALFLIFE)) ** (seen + 1.0), 1e-3)
    chosen, residual, season_scale, profile_now = _seasons(
        states, rows, st, last, x.slot_ts, floor, plain_err, warm, p
    )
    has_season = chosen >= 0
    with np.errstate(all="ignore"):
        raw[PART_INDEX["season"]] = np.where(has_season, np.abs(residual) / season_scale, 0.0)
    y = np.where(has_season, last - profile_now, last)  # the point with its season taken out

    # What each part measures the point against, and its unit, in the series' units (the evidence).
    ref = np.full((len(PARTS), n), np.nan)
    unit = np.full((len(PARTS), n), np.nan)
    ref[PART_INDEX["vae"]], unit[PART_INDEX["vae"]] = center, denom
    ref[PART_INDEX["level"]], unit[PART_INDEX["level"]] = center, denom
    season_back = np.where(has_season, profile_now, 0.0)  # the season taken out is put back
    ref[PART_INDEX["season"]] = np.where(has_season, last - residual, np.nan)
    unit[PART_INDEX["season"]] = np.where(has_season, season_scale, np.nan)
    raw[PART_INDEX["drift"]], drift_ref, unit[PART_INDEX["drift"]] = _drift(st, y, alpha, p)
    raw[PART_INDEX["far"]], far_ref, unit[PART_INDEX["far"]] = _far(st, y, seen, p)
    ref[PART_INDEX["drift"]], ref[PART_INDEX["far"]] = drift_ref + season_back, far_ref + season_back

    for i, part in enumerate(TAIL_PARTS):
        k = PART_INDEX[part]
        active = np.ones(n, dtype=bool)
        if part == "season":
            active = has_season
        elif part == "drift":
            active = seen >= 4 * p.drift_fast
        elif part == "far":
            active = seen >= 2 * p.warmup
        s, thr, band_thr[k] = _tail(st, i, part, raw[k], active, alpha, threshold, p)
        surprise[k] = np.where(active, s, -np.inf)
        part_thr[k] = thr

    k_flat = PART_INDEX["flat"]
    surprise[k_flat], part_thr[k_flat], raw[k_flat], longest_run = _flat(st, step, s_w, last, threshold, p)
    ref[k_flat] = last

    if p.season_cap < np.inf and has_season.any():
        cap = np.maximum(surprise[PART_INDEX["season"]], 0.0) + p.season_cap
        for part in ("vae", "level", "drift", "far"):
            k = PART_INDEX[part]
            surprise[k] = np.where(has_season, np.minimum(surprise[k], cap), surprise[k])

    allowed = np.array([part in p.parts for part in PARTS])
    surprise[~allowed] = -np.inf
    best = np.argmax(surprise, axis=0)
    cols = np.arange(n)
    top = np.maximum(surprise[best, cols], 0.0)
    st[:, Col.SEEN] = seen + 1.0
    warming = seen < p.warmup

    # post-processing: consecutive surprising points add up; a value far outside the recent range
    # always alerts; an event raises the bar for the events after it, an alert for the alerts
    # (the tail parts' surprise only: a flat run's grows with the run, it is its own accumulation)
    pointwise = np.maximum(surprise[[PART_INDEX[t] for t in TAIL_PARTS]].max(axis=0), 0.0)
    acc = st[:, Col.ACC_SUM] * p.accumulate_decay + np.maximum(0.0, pointwise - p.accumulate_from)
    acc_n = st[:, Col.ACC_COUNT] * p.accumulate_decay + (pointwise > p.accumulate_from)
    with np.errstate(all="ignore"):
        summed = np.where(acc_n > 0, p.accumulate_from + acc / np.sqrt(acc_n), 0.0)
    found = np.where(warming, 0.0, np.maximum(top, summed))
    st[:, Col.ACC_SUM] = np.where(warming, 0.0, acc)
    st[:, Col.ACC_COUNT] = np.where(warming, 0.0, acc_n)

    recent_range = np.maximum(x.past_range, step_max)  # the step max before this point's step
    with np.errstate(over="ignore"):  # a range near 1e308 times the ratio is inf: no spike is that far
        spike = ~warming & (recent_range > 0) & (np.abs(last - center) >= p.spike_ratio * recent_range)
    event = ~warming & ((found >= bar) | spike)
    alert = ~warming & ((found >= threshold) | spike)
    # Below the alert threshold a score is reported against the event bar: the rest of an episode that
    # has not alerted ranks below its first event (NAB's sweep, a benchmark's threshold), while a score
    # that reaches the threshold is reported as it is, so an episode that grows still alerts once.
    score = np.where(found >= p.threshold, found, found * p.event_level / bar)
    score = np.where(spike, np.maximum(found, threshold), score)
    part = np.where(spike, PART_INDEX["spike"], best).astype(np.int8)
    decay = 0.5 ** (1.0 / p.cooldown_halflife)
    st[:, Col.EVENT_BAR] = np.where(event, 2.0 * np.maximum(found, score), event_bar * decay)
    st[:, Col.ALERT_BAR] = np.where(alert, 2.0 * score, alert_bar * decay)
    _after_alert(st, alert, part)
    # Steps into and out of an alert are not learnt as ordinary: one spike (and its return) would
    # otherwise blind the spike rule and the flat-past level for a half-life.
    unusual = alert | (alert_bar > p.threshold)
    st[:, Col.STEP_MAX] = np.where(unusual, step_max * decay_step, st[:, Col.STEP_MAX])

    states.scalars[rows] = st
    expected, lower, upper = _band(last, center, denom, has_season, residual, season_scale, band_thr, warming)
    ref[PART_INDEX["spike"]], unit[PART_INDEX["spike"]] = center, recent_range
    k = np.minimum(part.astype(np.intp), PART_INDEX["flat"])  # spike: filled in below
    with np.errstate(all="ignore"):
        part_score = np.where(spike, np.abs(last - center), raw[k, cols])
        part_threshold = np.where(spike, p.spike_ratio * recent_range, part_thr[k, cols])
    periods = np.array([period for period, _ in SEASONS.values()] + [np.nan])
    fired = part.astype(np.intp)
    return Decisions(
        score=score,
        threshold=threshold,
        part=part,
        part_score=np.where(spike, part_score, np.minimum(part_score, MAX_RAW)),
        part_threshold=np.where(spike, part_threshold, np.minimum(part_threshold, MAX_RAW)),
        alert=alert,
        warming=warming,
        expected=expected,
        lower=lower,
        upper=upper,
        reference=ref[fired, cols],
        unit=unit[fired, cols],
        period_s=periods[np.where(has_season, chosen, -1)],
        longest_run=np.where(fired == k_flat, longest_run, np.nan),
    )


def _known(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _band(
    last: np.ndarray, center: np.ndarray, denom: np.ndarray, has_season: np.ndarray, residual: np.ndarray,
    season_scale: np.ndarray, band_thr: np.ndarray, warming: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """What the point was expected to be, and the range around it that the part judging the point's
    value accepts: the seasonal prediction and the season's scale where a season is in use, else the
    window's median and the level part's scale; the half-width is that part's tail quantile
    (tail_quantile, 99 % by default) of the series' own recent raw scores (`band_thr`), in those
    scales: the band holds what the series' ordinary points reach. (Narrower bands extrapolated from
    it with the tail's mean excess are not calibrated: docs/kpi.md#the-band.)"""
    with np.errstate(all="ignore"):
        expected = np.where(has_season, last - residual, center)
        scale = np.where(has_season, season_scale, denom)
        k = np.where(has_season, band_thr[PART_INDEX["season"]], band_thr[PART_INDEX["level"]])
        half = k * scale
    known = ~warming & np.isfinite(expected) & np.isfinite(half) & (scale > 0)
    nan = np.full(len(last), np.nan)
    return (np.where(known, expected, nan), np.where(known, expected - half, nan),
            np.where(known, expected + half, nan))  # fmt: skip


def _plain_level(st: np.ndarray, last: np.ndarray, floor: np.ndarray, p: DetectorParams) -> np.ndarray:
    """The error of predicting each point by a smoothed level (no season), and that level, updated."""
    level, err = st[:, Col.PLAIN_LEVEL], st[:, Col.PLAIN_ERROR]
    rate = _halflife_rate(PLAIN_HALFLIFE)
    new = np.isnan(level)
    e = np.where(new, 0.0, last - level)
    lim = HUBER * 1.25 * np.maximum(err, floor)
    with np.errstate(all="ignore"):
        err = np.where(new, err, err + rate * (np.minimum(np.abs(e), lim) - err))
        st[:, Col.PLAIN_LEVEL] = np.where(new, last, level + p.season_level_rate * np.clip(e, -lim, lim))
    st[:, Col.PLAIN_ERROR] = err
    return err


def _seasons(
    states: StateMatrices, rows: np.ndarray, st: np.ndarray, last: np.ndarray, slot_ts: np.ndarray,
    floor: np.ndarray, plain_err: np.ndarray, warm: np.ndarray, p: DetectorParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Update every seasonal candidate of each row; return the chosen one (-1: none), its residual,
    its scale at this phase and its profile value at this phase."""
    n = len(rows)
    chosen = np.full(n, -1)
    best_err = np.full(n, np.inf)
    residual, scale_now, profile_now = np.zeros(n), np.ones(n), np.zeros(n)
    rate = _halflife_rate(PLAIN_HALFLIFE)
    for c, (period_s, _) in enumerate(SEASONS.values()):
        bins = st[:, season_col(c, 4)]
        live = bins > 0
        if not live.any():
            continue
        idx = np.flatnonzero(live)
        r, nb = rows[idx], bins[idx].astype(np.intp)
        phase = np.mod(slot_ts[idx], period_s) / period_s
        b = np.minimum((phase * nb).astype(np.intp), nb - 1)
        col = BIN_OFFSETS[c] + b
        prof = states.profiles[r, col].astype(np.float64)
        level = st[idx, season_col(c, 0)]
        x = last[idx]
        # the level starts from the first point, less the profile where one was primed
        new_level = np.isnan(level)
        level = np.where(new_level, x - np.nan_to_num(prof), level)
        first_visit = np.isnan(prof)
        prof = np.where(first_visit, x - level, prof)
        e = x - (level + prof)
        predicted = ~new_level & ~first_visit
        # A bin learnt in its first periods and now off by far more than the plain level ever is took a
        # glitch for its profile (one bad point on a new series' first day or week): it starts again
        # from this point.
        periods = st[idx, season_col(c, 2)] / np.maximum(st[idx, season_col(c, 3)], 1.0)
        reach = HUBER * 4.0 * np.maximum(plain_err[idx] / warm[idx], floor[idx])
        again = predicted & (periods < 2.0) & (np.abs(e) > reach)
        prof = np.where(again, x - level, prof)
        e = np.where(again, 0.0, e)
        predicted = predicted & ~again
        width = np.maximum(1, nb // 48)
        offsets = np.arange(-_SMOOTH, _SMOOTH + 1)
        near = np.mod(b[:, None] + offsets[None, :], nb[:, None])
        near_scales = states.scales[r[:, None], BIN_OFFSETS[c] + near].astype(np.float64)
        near_scales = np.where(np.abs(offsets)[None, :] <= width[:, None], near_scales, np.nan)
        counted = ~np.isnan(near_scales)
        with np.errstate(all="ignore"):
            smooth = np.where(counted.any(axis=1), np.nansum(near_scales, axis=1) / counted.sum(axis=1), 0.0)
        sc = np.maximum(np.maximum(smooth, floor[idx]), 1e-12)
        ec = np.clip(e, -HUBER * sc, HUBER * sc)
        g = np.maximum(p.season_profile_rate, 1.0 / (periods + 2.0))
        gs = np.maximum(p.season_scale_rate, 1.0 / (periods + 2.0))
        level = np.where(predicted, level + p.season_level_rate * ec, level)
        prof = np.where(predicted, prof + g * ec * (1.0 - p.season_level_rate), prof)
        old_scale = states.scales[r, col].astype(np.float64)
        new_scale = np.where(
            np.isnan(old_scale),
            np.minimum(np.abs(e), reach),
            old_scale + gs * (np.minimum(np.abs(e), HUBER * sc) - old_scale),
        )
        with np.errstate(invalid="ignore"):  # non-finite values keep the bin as it was
            prof = np.where(np.isfinite(prof), np.clip(prof, -_F32, _F32), states.profiles[r, col])
            new_scale = np.where(np.isfinite(new_scale), np.minimum(new_scale, _F32), old_scale)
        states.profiles[r, col] = prof.astype(np.float32)
        states.scales[r, col] = np.where(predicted, new_scale, old_scale).astype(np.float32)
        err = st[idx, season_col(c, 1)]
        with np.errstate(invalid="ignore"):
            moved = err + rate * (np.minimum(np.abs(e), HUBER * sc) - err)
        err = np.where(predicted & np.isfinite(moved), moved, err)
        level = np.where(np.isfinite(level), level, st[idx, season_col(c, 0)])
        count = st[idx, season_col(c, 2)] + predicted
        st[idx, season_col(c, 0)] = level
        st[idx, season_col(c, 1)] = err
        st[idx, season_col(c, 2)] = count
        usable = predicted & (count >= p.season_min_periods * st[idx, season_col(c, 3)]) & \
            (err < p.season_advantage * plain_err[idx]) & (err < best_err[idx])  # fmt: skip
        pick = idx[usable]
        chosen[pick] = c
        best_err[pick] = err[usable]
        residual[pick] = e[usable]
        scale_now[pick] = np.maximum(sc[usable], 0.25 * err[usable])
        profile_now[pick] = prof[usable]
    return chosen, residual, np.maximum(scale_now, 1e-12), profile_now


def _drift(
    st: np.ndarray, y: np.ndarray, alpha: np.ndarray, p: DetectorParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A short mean against a long one, in units of the series' spread around the long one: (that
    score, the long mean, the spread)."""
    fast, slow, spread = st[:, Col.DRIFT_FAST], st[:, Col.DRIFT_SLOW], st[:, Col.DRIFT_SCALE]
    fast = np.where(np.isnan(fast), y, fast)
    slow = np.where(np.isnan(slow), y, slow)
    with np.errstate(all="ignore"):
        fast = fast + _halflife_rate(p.drift_fast) * (y - fast)
        slow = slow + _halflife_rate(p.drift_slow) * (y - slow)
        dev = np.abs(y - slow)
        spread = np.where(spread > 0, spread + alpha * (np.minimum(dev, 10.0 * spread + 1e-12) - spread), dev)
        out = np.where(spread > 0, np.abs(fast - slow) / spread, 0.0)
    st[:, Col.DRIFT_FAST], st[:, Col.DRIFT_SLOW], st[:, Col.DRIFT_SCALE] = fast, slow, spread
    return np.nan_to_num(out, nan=0.0, posinf=MAX_RAW), slow, spread


def _far(
    st: np.ndarray, y: np.ndarray, seen: np.ndarray, p: DetectorParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The point against the series' long-run level and spread, a robust rolling z-score that adapts:
    (that score, the level and the spread it was measured with)."""
    level, spread = st[:, Col.FAR_LEVEL], st[:, Col.FAR_SCALE]
    level = np.where(np.isnan(level), y, level)
    measured_with = level, np.where(spread > 0, spread, np.nan)
    with np.errstate(all="ignore"):
        out = np.where(spread > 0, np.abs(y - level) / spread, 0.0)
        rate = np.maximum(_halflife_rate(p.far_halflife), 1.0 / (seen + 2.0))
        lim = np.where(spread > 0, HUBER * spread, np.abs(y - level))
        level = level + rate * np.clip(y - level, -lim, lim)
        dev = np.abs(y - level)
        spread = np.where(spread > 0, spread + rate * (np.minimum(dev, HUBER * spread) - spread), dev)
    st[:, Col.FAR_LEVEL] = np.where(np.isfinite(level), level, st[:, Col.FAR_LEVEL])
    st[:, Col.FAR_SCALE] = np.where(np.isfinite(spread), spread, st[:, Col.FAR_SCALE])
    return np.nan_to_num(out, nan=0.0, posinf=MAX_RAW), *measured_with


def _tail(
    st: np.ndarray, i: int, part: str, raw: np.ndarray, active: np.ndarray, alpha: np.ndarray,
    threshold: np.ndarray, p: DetectorParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(surprise, the raw score that reaches `threshold`, the raw score at the tail quantile) of each
    row's raw score of one part; then learn it.

    Peaks over threshold (SPOT-like, with an exponential tail): above its tail_quantile t, a part's
    log-scores are taken to fall off as exp(-(y - t) / b), b their mean excess over t, so
    surprise = -log10(P(Y >= y)) = -log10(1 - q) + (y - t) / (b ln 10). t moves by stochastic
    approximation and b is an exponentially weighted mean; an excess larger than the event level's
    is learnt as that one, so an anomaly does not raise its series' tail much. Rows where the part is
    not active learn nothing.
    """
    qc, bc = Col.TAILS + 2 * i, Col.TAILS + 2 * i + 1
    t = st[:, qc].copy()
    b = np.maximum(st[:, bc], p.excess_floor * EXCESS_FLOOR_FACTOR[part])
    y = np.log(EPS[part] + np.minimum(np.where(np.isfinite(raw), np.maximum(raw, 0.0), MAX_RAW), MAX_RAW))
    base = -math.log10(1.0 - p.tail_quantile)
    surprise = base + (y - t) / (b * LN10)
    y_event = t + b * LN10 * (p.event_level - base)
    excess = np.minimum(y, y_event) - t
    tail_rate = np.minimum(0.2, alpha / (1.0 - p.tail_quantile))
    learn_b = active & (excess > 0)
    st[:, bc] = np.where(learn_b, b + tail_rate * (excess - b), st[:, bc])
    moved = t + p.quantile_step * b * ((y > t).astype(np.float64) - (1.0 - p.tail_quantile))
    st[:, qc] = np.where(active, moved, t)
    with np.errstate(over="ignore"):
        at_threshold = np.exp(np.minimum(t + b * LN10 * (threshold - base), 700.0)) - EPS[part]
        at_band = np.exp(np.minimum(t, 700.0)) - EPS[part]  # the part's tail quantile itself
    return surprise, at_threshold, at_band


def _flat(st: np.ndarray, step: np.ndarray, s_w: np.ndarray, last: np.ndarray, threshold: np.ndarray,
          p: DetectorParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(surprise, the run length that reaches `threshold`, run length, the longest recent run it is
    judged against) of the run of equal values ending here.

    Runs are judged against the longest of the series' recent runs, not a mean: runs of equal values
    are heavy-tailed (a count idles at 0 for a while every night). In the other parts' units: 0 at the
    longest recent run, the alert threshold at flat_ratio times it. A series that has hardly ever changed
    (a constant) is not judged: its runs are what it is; nor is a run at the lowest value the series
    has had (a count idling at 0 is not stuck; a count stuck at 0 in its busy hours is the season
    part's to find).
    """
    tol = p.flat_tolerance * s_w + 1e-12 * np.abs(last)
    floor = np.fmin(st[:, Col.FLOOR], last)  # fmin: a NaN floor (a new series) takes the value
    st[:, Col.FLOOR] = floor
    same = step <= tol
    run = np.where(same, st[:, Col.RUN] + 1.0, 1.0)
    ended = np.where(same, 0.0, st[:, Col.RUN])
    changes = np.minimum(st[:, Col.CHANGES] + (~same), 1e9)
    longest = np.maximum(st[:, Col.LONGEST_RUN], 1.0)
    judged_against = longest
    run_thr = np.maximum(float(p.flat_min_run), p.flat_ratio * longest)
    surprise = p.threshold * np.log(run * p.flat_ratio / run_thr) / math.log(p.flat_ratio)
    longest = np.where(ended > 0, np.maximum(longest, np.minimum(ended, run_thr)), longest)
    st[:, Col.LONGEST_RUN] = np.maximum(longest * 0.5 ** (1.0 / p.adapt_halflife), 1.0)
    st[:, Col.RUN], st[:, Col.CHANGES] = run, changes
    judged = (changes >= p.flat_min_changes) & (last > floor + tol)
    at_threshold = run_thr * p.flat_ratio ** ((threshold - p.threshold) / p.threshold)
    return np.where(judged, surprise, -np.inf), at_threshold, run, judged_against


def _after_alert(st: np.ndarray, alert: np.ndarray, part: np.ndarray) -> None:
    """An alert starts a new accumulation; a flat alert makes its run known (it alerts again only if
    it lasts flat_ratio times longer); a drift or level alert moves the drift part's long mean to its
    short one, so the same change does not keep firing."""
    st[:, Col.ACC_SUM] = np.where(alert, 0.0, st[:, Col.ACC_SUM])
    st[:, Col.ACC_COUNT] = np.where(alert, 0.0, st[:, Col.ACC_COUNT])
    flat = alert & (part == PART_INDEX["flat"])
    st[:, Col.LONGEST_RUN] = np.where(flat, st[:, Col.RUN], st[:, Col.LONGEST_RUN])
    moved = alert & ((part == PART_INDEX["drift"]) | (part == PART_INDEX["level"]))
    st[:, Col.DRIFT_SLOW] = np.where(moved, st[:, Col.DRIFT_FAST], st[:, Col.DRIFT_SLOW])


def decide_in_order(states: StateMatrices, rows: np.ndarray, x: PointInputs, p: DetectorParams) -> Decisions:
    """decide() for a batch that may hold several points of one series (in time order): in rounds,
    the k-th point of each series in round k."""
    rows = np.asarray(rows, dtype=np.intp)
    if len(rows) <= 1 or len(np.unique(rows)) == len(rows):
        return decide(states, rows, x, p)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    occurrence = np.empty(len(rows), dtype=np.intp)
    occurrence[order] = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    made, positions = [], []
    for k in range(int(occurrence.max()) + 1):
        at = np.flatnonzero(occurrence == k)
        sub = PointInputs(*(getattr(x, f)[at] for f in PointInputs.__slots__))
        made.append(decide(states, rows[at], sub, p))
        positions.append(at)
    return Decisions.concat(made, np.concatenate(positions))


__all__ = ["MIN_SCALE", "Decision", "Decisions", "PointInputs", "decide", "decide_in_order"]
