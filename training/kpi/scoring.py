"""Score series as the worker does, and the classic detectors beside it; turn scores into alerts.

The detector (`detect_all`) is the worker's own code path: windows scaled by `schemas.detect`, the
exported graph's score from plain onnxruntime, then `schemas.detect.replay` point by point in time
order. Its priors and the primed state of each series come from the learning parts (train and
validation) of the series (`fit_detector`). The classic detectors are scored on the same points and
calibrated the classic way (a threshold per series: the 99th percentile of its validation part), so
a comparison at the default thresholds is fair to them; NAB's scores sweep every detector's threshold
anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas.detect import (
    TAIL_PARTS,
    Col,
    DetectorParams,
    PartPrior,
    PointInputs,
    SeriesPoints,
    StateFile,
    WindowFeatures,
    replay,
)
from schemas.timeseries import scoreable
from training.core.onnx_scoring import cpu_session, onnx_scores
from training.kpi.baseline import hampel, rolling_zscore
from training.kpi.evaluate import SeriesOutcome
from training.kpi.windows import SeriesData, WindowConfig, features

DAY_S = 86_400.0
SCORE_BATCH = 8192  # windows per onnxruntime run: a window is small
BASELINE_PERCENTILE = 99.0


@dataclass
class Scored:
    """One detector on one series: its scores at grid indices `ends` and the threshold of each."""

    ends: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    parts: np.ndarray | None = None  # the detector: index into schemas.detect.PARTS per point
    model_scores: np.ndarray | None = None  # the detector: the graph's raw score per point
    alert_flags: np.ndarray | None = None  # the detector's own verdicts (a spike alerts at any score)
    lower: np.ndarray | None = None  # the detector: its normal band per point (NaN where unknown)
    upper: np.ndarray | None = None

    @property
    def alerts(self) -> np.ndarray:
        return self.alert_flags if self.alert_flags is not None else self.scores >= self.thresholds

    def ratio(self) -> np.ndarray:
        """score / threshold: >= 1 alerts; comparable across series (what NAB's sweep is given)."""
        return self.scores / np.maximum(self.thresholds, 1e-12)


@dataclass
class RawScores:
    """What the detector decides on, for every point of a series the worker would score."""

    ends: np.ndarray
    features: WindowFeatures
    model: np.ndarray  # the graph's score
    slot_ts: np.ndarray  # the grid time of each point

    def points(self, key: str, interval_s: float, upto: int | None = None) -> SeriesPoints:
        """The series' points for the detector (the first `upto` only, when given)."""
        idx = slice(None) if upto is None else slice(0, upto)
        return SeriesPoints(key, interval_s, PointInputs.of(self.features, self.model, self.slot_ts, idx))


def raw_scores(session: ort.InferenceSession, s: SeriesData, cfg: WindowConfig) -> RawScores:
    ends = scoreable(s.grid, cfg.window)
    f = features(s, ends, cfg)
    slot_ts = s.grid.slots[ends].astype(np.float64) * s.interval_s
    return RawScores(ends, f, onnx_scores(session, f.z, SCORE_BATCH), slot_ts)


def detect_all(
    series: list[SeriesData], raws: list[RawScores], params: DetectorParams, primed: StateFile | None = None
) -> list[Scored]:
    """The detector over every point of each series in time order, each from its primed state (when
    `primed` holds it) or a new series' state."""
    points = [r.points(s.key, s.interval_s) for s, r in zip(series, raws, strict=True)]
    decisions, _ = replay(points, params, primed)
    return [
        Scored(r.ends, d.score, d.threshold, d.part, r.model, d.alert, d.lower, d.upper)
        for r, d in zip(raws, decisions, strict=True)
    ]


def learning_points(series: list[SeriesData], raws: list[RawScores]) -> list[SeriesPoints]:
    """Each series' points up to the end of its validation part: what training may learn from."""
    return [
        r.points(s.key, s.interval_s, int(np.searchsorted(r.ends, s.val_end)))
        for s, r in zip(series, raws, strict=True)
    ]


def fit_detector(
    series: list[SeriesData], raws: list[RawScores], params: DetectorParams
) -> tuple[DetectorParams, StateFile]:
    """Priors and primed states from the learning parts (labels unused).

    The priors are the median, over series with at least 10 learning points where the part took
    part, of each tail part's statistics at the end of its learning part (run from neutral priors);
    each series' primed state is where the detector, started from those priors, stands after its
    learning part."""
    learn = learning_points(series, raws)
    neutral = params.model_copy(update={"priors": {}})
    _, states = replay(learn, neutral)
    enough = np.array([len(p) >= 10 for p in learn])
    priors = {}
    for i, part in enumerate(TAIL_PARTS):
        seen = states.scalars[:, [Col.TAILS + 2 * i, Col.TAILS + 2 * i + 1]]
        # Only series where the part took part (a season on a series without one, or a part not yet
        # active in a short learning part, kept the neutral start: quantile 0, mean excess 1).
        learnt = enough & ~((seen[:, 0] == 0.0) & (seen[:, 1] == 1.0))
        if learnt.any():
            priors[part] = PartPrior(
                quantile=float(np.median(seen[learnt, 0])),
                excess=max(float(np.median(seen[learnt, 1])), params.excess_floor),
            )
    fitted = params.model_copy(update={"priors": priors})
    _, primed = replay(learn, fitted)
    return fitted, StateFile([p.key for p in learn], primed)


def fitted_raw_scores(
    model_path: Path, series: list[SeriesData], cfg: WindowConfig, params: DetectorParams
) -> tuple[list[RawScores], DetectorParams, StateFile]:
    """Every series' raw scores from the graph, the params with priors fitted on the learning parts,
    and the series' primed states."""
    session = cpu_session(model_path)
    raws = [raw_scores(session, s, cfg) for s in series]
    fitted, primed = fit_detector(series, raws, params)
    return raws, fitted, primed


def baseline_scored(series: list[SeriesData], cfg: WindowConfig, which: str) -> list[Scored]:
    """A classic detector on the detector's points, thresholded at the 99th percentile of each
    series' validation scores (its usual calibration)."""
    out = []
    for s in series:
        ends = scoreable(s.grid, cfg.window)
        if which == "zscore":
            scores = rolling_zscore(s.grid.values, ends)
        elif which == "hampel":
            scores = hampel(s.grid.values, ends, cfg.window)
        else:
            raise ValueError(f"unknown baseline {which!r}")
        val = scores[s.part_of(ends) == 1]
        threshold = float(np.percentile(val, BASELINE_PERCENTILE)) if val.size else float(np.inf)
        out.append(Scored(ends, scores, np.full(len(ends), threshold)))
    return out


def outcomes(series: list[SeriesData], scored: list[Scored], part: int = 2) -> list[SeriesOutcome]:
    """Alerts on the real points of each series' test part (a point not scored is not alerted)."""
    out = []
    for s, sc in zip(series, scored, strict=True):
        alerts = np.zeros(len(s.grid), dtype=bool)
        alerts[sc.ends[sc.alerts]] = True
        idx = np.arange(s.val_end if part == 2 else 0, len(s.grid))
        idx = idx[~s.grid.missing[idx]]
        out.append(SeriesOutcome(s.labels[idx], s.kinds[idx], alerts[idx], idx.size * s.interval_s / DAY_S))
    return out


def per_point(s: SeriesData, sc: Scored) -> np.ndarray:
    """score / threshold on every grid point of the series (0 where nothing was scored); a point the
    detector alerted on is at least 1 (a spike alerts whatever its score)."""
    out = np.zeros(len(s.grid))
    ratio = sc.ratio()
    if sc.alert_flags is not None:
        ratio = np.where(sc.alert_flags, np.maximum(ratio, 1.0), ratio)
    out[sc.ends] = ratio
    return out
