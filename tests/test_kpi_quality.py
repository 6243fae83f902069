"""The KPI quality run on the held-out synthetic set (slow): with the CLI's defaults and NAB's protocol
(learn from the first 15% of each series, score every point), the detector beats the rolling z-score
on NAB's standard score and on point-adjusted F1. No default was tuned on this set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_on_the_held_out_set_the_detector_beats_the_zscore_on_nab_and_point_adjusted_f1(
    tmp_path: Path,
) -> None:
    cli("synth", "--profile", "heldout", "--out", str(tmp_path / "heldout"))
    bundle = tmp_path / "kpi-vae" / "1"
    out = cli("benchmark", "--data", str(tmp_path / "heldout" / "kpi.csv"), "--out", str(bundle),
              "--no-progress", "--no-report")  # fmt: skip
    assert "every point of 24 series after NAB's probationary 15%" in out
    [report] = bundle.glob("evaluation-*.json")
    detectors = {d["name"]: d for d in json.loads(report.read_text())["detectors"]}
    ours, zscore = detectors["detector"], detectors["zscore"]
    assert ours["nab"]["standard"] > zscore["nab"]["standard"]
    assert ours["best_f1"] > zscore["best_f1"]
    assert ours["default"]["f1"] > zscore["default"]["f1"]
