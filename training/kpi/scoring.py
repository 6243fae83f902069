"""Score series as the worker does, and the classic detectors beside it; turn scores into alerts.

The detector (`detect`) is the worker's own code path: windows scaled by `schemas.detect`, the
exported graph's score from plain onnxruntime, then `schemas.detect.decide` point by point in
time order. The classic detectors are scored on the same points and calibrated the classic way
(a threshold per series: the 99th percentile of its validation part), so a comparison at the
default thresholds is fair to them; NAB's scores sweep every detector's threshold anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas.detect import (
    EPS,
    PARTS,
    DetectorParams,
    PartPrior,
    WindowFeatures,
    decide,
    level_score,
    new_state,
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

    @property
    def alerts(self) -> np.ndarray:
        return self.scores >= self.thresholds

    def ratio(self) -> np.ndarray:
        """score / threshold: >= 1 alerts; comparable across series (what NAB's sweep is given)."""
        return self.scores / np.maximum(self.thresholds, 1e-12)


@dataclass
class RawScores:
    """What the detector decides on, for every point of a series the worker would score."""

    ends: np.ndarray
    features: WindowFeatures
    model: np.ndarray  # the graph's score


def raw_scores(session: ort.InferenceSession, s: SeriesData, cfg: WindowConfig) -> RawScores:
    ends = scoreable(s.grid, cfg.window)
    f = features(s, ends, cfg)
    return RawScores(ends, f, onnx_scores(session, f.z, SCORE_BATCH))


def detect(raw: RawScores, params: DetectorParams) -> Scored:
    """schemas.detect.decide over a series' points in time order, from a new series' state."""
    state = new_state(params)
    f, n = raw.features, len(raw.ends)
    scores, thresholds, parts = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int8)
    cols = zip(
        raw.model.tolist(), f.center.tolist(), f.scale.tolist(), f.step.tolist(), f.last.tolist(),
        f.prev.tolist(), strict=True,
    )  # fmt: skip
    for i, (m, center, scale, step, last, prev) in enumerate(cols):
        d = decide(state, params, m, center, scale, step, last, prev)
        scores[i], thresholds[i], parts[i] = d.score, d.threshold, PARTS.index(d.part)
    return Scored(raw.ends, scores, thresholds, parts, raw.model)


def fit_priors(
    series: list[SeriesData], raws: list[RawScores], params: DetectorParams
) -> dict[str, PartPrior]:
    """Starting tail statistics of each part: the median, over series, of the tail_quantile of
    log(eps + raw score) on each validation part and of the mean excess over it (labels unused).
    The flat part starts neutral."""
    stats: dict[str, list[tuple[float, float]]] = {p: [] for p in ("vae", "level")}
    for s, r in zip(series, raws, strict=True):
        val = s.part_of(r.ends) == 1
        if val.sum() < 10:
            continue
        f = r.features
        mean_step = float(np.mean(np.abs(f.last - f.prev)))
        level = level_score(f.center, np.maximum(f.scale, 0.5 * mean_step), f.last)
        for part, values in (("vae", r.model), ("level", level)):
            y = np.log(EPS[part] + np.minimum(values[val], 1e6))
            t = float(np.quantile(y, params.tail_quantile))
            above = y[y > t] - t
            stats[part].append((t, float(above.mean()) if above.size else params.excess_floor))
    out = {}
    for part, rows in stats.items():
        if rows:
            quantiles, excesses = np.array(rows).T
            out[part] = PartPrior(
                quantile=float(np.median(quantiles)),
                excess=max(float(np.median(excesses)), params.excess_floor),
            )
    return out


def fitted_raw_scores(
    model_path: Path, series: list[SeriesData], cfg: WindowConfig, params: DetectorParams
) -> tuple[list[RawScores], DetectorParams]:
    """Every series' raw scores from the graph, and the params with priors fitted on the validation parts."""
    session = cpu_session(model_path)
    raws = [raw_scores(session, s, cfg) for s in series]
    return raws, params.model_copy(update={"priors": fit_priors(series, raws, params)})


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
    """score / threshold on every grid point of the series (0 where nothing was scored)."""
    out = np.zeros(len(s.grid))
    out[sc.ends] = sc.ratio()
    return out
