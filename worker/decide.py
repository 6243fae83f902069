"""The decide stage: for each scored record, an alert or not, against which threshold, and how severe.

Which rule decides is the record kind's (worker/kinds/): images alert at score >= the model's
threshold (`against_threshold`); a metric point's series detector (schemas/detect/, decided a
batch at a time in the order the windows were made) brings its own score, threshold and verdict
(`from_detector`). How severe an alert is follows the rule its manifest names
(`ModelManifest.severity`), not a guess from the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from schemas import ModelManifest
from schemas.detect import Decisions
from schemas.manifest import ratio_severity

# (manifest, score, threshold) -> severity in [0, 1], 0.5 at the threshold.
SEVERITY_RULES: dict[str, Callable[[ModelManifest, float, float], float]] = {
    "calibration-span": lambda manifest, score, threshold: manifest.calibration.severity(score),
    "threshold-ratio": lambda manifest, score, threshold: ratio_severity(score, threshold),
}


@dataclass(frozen=True, slots=True)
class Verdicts:
    """What was decided for each record of a scored batch, in the batch's order."""

    scores: np.ndarray  # float64: the score each record was judged on
    thresholds: np.ndarray  # float64: the threshold it had to reach
    alerts: np.ndarray  # bool
    severities: np.ndarray  # float64; NaN where no alert
    decisions: Decisions | None = None  # metric points: the detector's (which part fired, ...)
    # Metric points: the value the model's VAE rebuilds for each point, in the series' units (NaN where
    # it is not finite); None where the graph has no such output or --no-explain.
    reconstructed: np.ndarray | None = None


def against_threshold(manifest: ModelManifest, scores: np.ndarray) -> Verdicts:
    """One threshold for every record: the model's; an alert at or above it."""
    thresholds = np.full(len(scores), manifest.threshold)
    return _with_severities(manifest, scores, thresholds, scores >= thresholds)


def from_detector(manifest: ModelManifest, decisions: Decisions) -> Verdicts:
    """The detector's decisions as they were made, one per record."""
    return _with_severities(manifest, decisions.score, decisions.threshold, decisions.alert, decisions)


def _with_severities(
    manifest: ModelManifest,
    scores: np.ndarray,
    thresholds: np.ndarray,
    alerts: np.ndarray,
    decisions: Decisions | None = None,
) -> Verdicts:
    rule = SEVERITY_RULES[manifest.severity]
    severities = np.full(len(scores), np.nan)
    for i in np.flatnonzero(alerts).tolist():  # most records are not anomalies: no work for them
        severities[i] = rule(manifest, float(scores[i]), float(thresholds[i]))
    return Verdicts(scores, thresholds, alerts, severities, decisions)
