"""Score series with a bundle's model.onnx (plain onnxruntime, as the worker does), calibrate, and alert.

The VAE and the baseline go through the same calibration and the same alert rule, so the
comparison between them is fair: thresholds from each series' validation part, alerts on
its test part where score >= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas import Calibration
from training.calibrate import calibrate
from training.kpi.baseline import baseline_scores
from training.kpi.evaluate import SeriesOutcome
from training.kpi.windows import SeriesData, score_windows
from training.onnx_scoring import cpu_session

DAY_S = 86_400.0


@dataclass
class Scored:
    """Scores of one series at grid indices `ends` (the window's last point)."""

    ends: np.ndarray
    scores: np.ndarray


def onnx_scores(session: ort.InferenceSession, windows: np.ndarray, batch: int = 8192) -> np.ndarray:
    """The graph's score per window ([N, W] float32 -> [N])."""
    name = session.get_inputs()[0].name
    if len(windows) == 0:
        return np.zeros(0)
    out = [
        session.run(["score"], {name: np.ascontiguousarray(windows[i : i + batch], dtype=np.float32)})[0]
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(out).astype(np.float64)


def vae_scored(model_path: Path, series: list[SeriesData], window: int) -> list[Scored]:
    session = cpu_session(model_path)
    out = []
    for s in series:
        ends, windows = score_windows(s, window)
        out.append(Scored(ends, onnx_scores(session, windows)))
    return out


def baseline_scored(series: list[SeriesData], window: int) -> list[Scored]:
    return [Scored(*baseline_scores(s, window)) for s in series]


def calibrate_series(
    series: list[SeriesData],
    scored: list[Scored],
    method: str,
    percentile: float,
    k: float,
    per_series: bool,
    what: str,
) -> tuple[Calibration, dict[str, float]]:
    """(model-wide calibration over every validation score, threshold per series key).

    Labels are not used: the validation parts may hold anomalies, as real data does, so a
    percentile is a cap on the alert rate rather than a promise about false alarms.
    """
    val = [sc.scores[s.part_of(sc.ends) == 1] for s, sc in zip(series, scored, strict=True)]
    cal = calibrate(
        np.concatenate(val), method, percentile, k,  # type: ignore[arg-type]
        data=f"{what} of the validation part of {len(series)} series (labels unused)",
    )  # fmt: skip
    if not per_series:
        return cal, {s.key: cal.threshold for s in series}
    return cal, {
        s.key: calibrate(v, method, percentile, k).threshold  # type: ignore[arg-type]
        for s, v in zip(series, val, strict=True)
    }


def outcomes(
    series: list[SeriesData], scored: list[Scored], thresholds: dict[str, float]
) -> list[SeriesOutcome]:
    """Alerts on the real points of each test part (a point not scored is not alerted)."""
    out = []
    for s, sc in zip(series, scored, strict=True):
        alerts = np.zeros(len(s.grid), dtype=bool)
        alerts[sc.ends[sc.scores >= thresholds[s.key]]] = True
        idx = np.arange(s.val_end, len(s.grid))
        idx = idx[~s.grid.missing[idx]]
        out.append(SeriesOutcome(s.labels[idx], s.kinds[idx], alerts[idx], idx.size * s.interval_s / DAY_S))
    return out
