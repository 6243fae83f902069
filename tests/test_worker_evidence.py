"""A metric alert's evidence (worker/evidence.py): the firing part's numbers, from real decisions of
the detector on series with a known anomaly (the stand-in model of test_detect.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from schemas.detect import PARTS, DetectorParams
from schemas.outputs import AnomalyAlert, Evidence, output_json
from tests.test_detect import DAY, W, alerts_at, run
from worker.evidence import evidence


def first_alert(d, x: np.ndarray, start: int, part: str) -> tuple[int, Evidence]:
    """The index of the first alert at or after point `start` named `part`, and its evidence."""
    hits = [h - W + 1 for h in alerts_at(d) if h >= start and PARTS[d.part[h - W + 1]] == part]
    assert hits, f"no {part} alert after {start}"
    i = hits[0]
    return i, evidence(d[i], float(x[i + W - 1]), W, 300.0)


def step() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.normal(50, 1, 3000)
    x[2000:] += 15
    return x


def test_a_level_alert_says_how_many_deviations_from_which_median_over_which_span() -> None:
    x = step()
    d, _ = run(x, DetectorParams(warmup=0, parts=("level",)))
    i, e = first_alert(d, x, 2000, "level")
    assert i + W - 1 == 2000
    assert abs(e.reference - np.median(x[2000 - W + 1 : 2000])) < 1e-9  # the window's past's median
    assert 0.5 < e.scale < 2.0  # the noise's scale (1), not the step's
    assert abs(e.deviations - d.part_score[i]) < 1e-9 and e.deviations > 8
    assert e.span_points == W - 1 and e.span_s == (W - 1) * 300.0
    assert "robust deviations" in e.summary and "median" in e.summary and f"{W - 1} points" in e.summary


def test_a_far_alert_measures_the_point_against_the_long_run_level() -> None:
    x = step()
    d, _ = run(x)  # every part: this step is furthest from the series' long-run level
    i, e = first_alert(d, x, 2000, "far")
    assert i + W - 1 == 2000
    assert abs(e.reference - 50) < 0.5 and 0.3 < e.scale < 2.0
    assert abs(e.deviations - d.part_score[i]) < 1e-6 * e.deviations
    assert "long-run level" in e.summary


def test_a_flat_alert_gives_the_run_against_the_longest_recent_run() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(20, 2, 3000)
    x[2500:2560] = x[2500]
    d, _ = run(x)
    i, e = first_alert(d, x, 2500, "flat")
    assert e.run == int(d.part_score[i]) and e.run >= 2
    assert e.longest_run is not None and 1 <= e.longest_run < e.run
    assert e.reference == x[2500] and e.deviations is None
    assert f"for {e.run} points" in e.summary and f"longest recent run was {e.longest_run}" in e.summary


def test_a_season_alert_names_its_period_and_the_seasonal_prediction() -> None:
    rng = np.random.default_rng(14)
    t = np.arange(20 * DAY)
    x = 100 + 80 * np.exp(-(((t % DAY) - 150) ** 2) / (2 * 12.0**2)) + rng.normal(0, 2, t.size)
    day = 15 * DAY
    x[day + 110 : day + 190] = 100 + rng.normal(0, 2, 80)  # one day without its peak
    d, _ = run(x)
    i, e = first_alert(d, x, day + 110, "season")
    assert e.period == "day"
    assert e.reference > x[i + W - 1] + 5 * e.scale  # the profile expected the peak, the value is low
    assert abs(e.deviations - d.part_score[i]) < 1e-6 * e.deviations
    assert "daily profile" in e.summary


def test_evidence_goes_out_on_the_alert_and_only_its_fields() -> None:
    x = step()
    d, _ = run(x, DetectorParams(warmup=0, parts=("level",)))
    _, e = first_alert(d, x, 2000, "level")
    fields = dict(record_id="r", kind="metric", model="m", model_version="1", score=9.0, threshold=4.0,
                  source={"topic": "t", "partition": 0, "offset": 1}, detected_at=datetime.now(UTC),
                  evidence=e)  # fmt: skip
    published = json.loads(output_json(AnomalyAlert, fields))
    assert set(published["evidence"]) == {"part", "summary", "reference", "scale", "deviations",
                                          "span_points", "span_s"}  # fields that do not apply are left out
    assert AnomalyAlert.model_validate(published).evidence == e
