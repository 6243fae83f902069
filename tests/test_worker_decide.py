"""The decide stage (worker/decide.py): alert or not, and how severe, by the rule the manifest names."""

from __future__ import annotations

import math

import numpy as np

from schemas.detect import PARTS, Decision, Decisions
from schemas.manifest import ratio_severity
from tests.test_manifest import manifest
from worker.decide import against_threshold, from_detector


def test_an_image_alerts_at_or_above_the_models_threshold_with_its_calibrated_severity() -> None:
    m = manifest()  # threshold 120, calibration span 20..220; no `severity`: calibration-span for images
    v = against_threshold(m, np.array([119.0, 120.0, 170.0]))
    assert v.alerts.tolist() == [False, True, True] and v.thresholds.tolist() == [120.0] * 3
    assert math.isnan(v.severities[0])
    calibrated = [m.calibration.severity(120.0), m.calibration.severity(170.0)]
    assert v.severities[1:].tolist() == calibrated == [0.5, 0.75]


def test_the_severity_rule_is_the_manifests_not_the_kinds() -> None:
    m = manifest(severity="threshold-ratio")
    v = against_threshold(m, np.array([240.0]))
    assert v.severities.tolist() == [ratio_severity(240.0, 120.0)] == [0.75]


def test_detector_decisions_bring_their_own_scores_and_thresholds() -> None:
    m = manifest(kind="metric")  # no `severity`: threshold-ratio for metrics
    decisions = Decisions(
        score=np.array([1.0, 8.0]), threshold=np.array([2.0, 2.0]),
        part=np.array([PARTS.index("vae"), PARTS.index("level")], np.int8), part_score=np.array([0.1, 9.0]),
        part_threshold=np.array([1.0, 4.0]), alert=np.array([False, True]), warming=np.array([False, False]),
        expected=np.array([np.nan, 10.0]), lower=np.array([np.nan, 8.0]), upper=np.array([np.nan, 12.0]),
        reference=np.array([np.nan, 10.0]), unit=np.array([np.nan, 0.5]), period_s=np.full(2, np.nan),
        longest_run=np.full(2, np.nan),
    )  # fmt: skip
    v = from_detector(m, decisions)
    assert v.scores.tolist() == [1.0, 8.0] and v.thresholds.tolist() == [2.0, 2.0]
    assert v.alerts.tolist() == [False, True] and v.decisions is decisions
    assert v.decisions[1] == Decision(score=8.0, threshold=2.0, part="level", part_score=9.0,
                                      part_threshold=4.0, alert=True, warming=False, expected=10.0,
                                      lower=8.0, upper=12.0, reference=10.0, unit=0.5)  # fmt: skip
    assert v.decisions[0].expected is None and v.decisions[0].upper is None  # unknown: left out of outputs
    assert math.isnan(v.severities[0]) and v.severities[1] == ratio_severity(8.0, 2.0) == 0.875
