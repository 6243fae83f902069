"""The quality run: the CLI's defaults must beat the published result on its own protocol (slow)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.core.bundle import read_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_defaults_meet_the_bar_within_five_minutes(tmp_path: Path) -> None:
    out = tmp_path / "mnist-vae" / "1"
    t0 = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "--dataset",
            "mnist",
            "--normal",
            "1,4",
            "--anomaly",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    metrics = read_manifest(out).metrics  # scored by onnxruntime with the manifest's threshold
    assert metrics["accuracy"] >= 0.985
    assert metrics["f1"] >= 0.985
    assert metrics["roc_auc_scores"] >= 0.998
    print(f"quality run: {time.monotonic() - t0:.0f} s wall, {metrics}")
