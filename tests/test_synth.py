"""The synthetic KPI generator: reproducible, labelled, every anomaly kind, a clear CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training.data.synth import KINDS, generate_series, synthesize

REPO = Path(__file__).resolve().parents[1]


def test_same_seed_same_series_and_labels_match_kinds() -> None:
    a = generate_series("s", 14, np.random.default_rng(3))
    b = generate_series("s", 14, np.random.default_rng(3))
    np.testing.assert_array_equal(a.values, b.values)
    assert len(a.values) == 14 * 288 and np.isfinite(a.values).all()
    assert all((lab == 1) == (kind != "") for lab, kind in zip(a.labels, a.kinds, strict=True))
    assert not a.labels[:288].any()  # the first day is normal history


def test_every_kind_appears_and_changes_the_series() -> None:
    rng = np.random.default_rng(0)
    seen: Counter[str] = Counter()
    for _ in range(20):
        s = generate_series("s", 28, rng)
        seen.update(k for k in s.kinds if k)
    assert set(seen) == set(KINDS)


def test_flatline_is_flat_and_spikes_stand_out() -> None:
    rng = np.random.default_rng(1)
    checked = Counter()
    for _ in range(30):
        s = generate_series("s", 28, rng)
        kinds = np.array(s.kinds)
        normal_steps = np.abs(np.diff(s.values))[(s.labels[1:] == 0) & (s.labels[:-1] == 0)]
        for start in np.flatnonzero((kinds[1:] != kinds[:-1]) & (kinds[1:] != "")) + 1:
            kind = kinds[start]
            end = start + np.argmax(kinds[start:] != kind) if (kinds[start:] != kind).any() else len(kinds)
            if kind == "flatline":
                assert np.ptp(s.values[start:end]) == 0
                checked[kind] += 1
            elif kind in ("spike", "dip"):
                jump = s.values[start] - s.values[start - 1]
                assert (jump > 0) == (kind == "spike")
                assert abs(jump) > np.percentile(normal_steps, 99)
                checked[kind] += 1
    assert set(checked) == {"flatline", "spike", "dip"}


def test_cli_writes_a_long_csv(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "synth",
            "--out",
            str(tmp_path),
            "--series",
            "3",
            "--days",
            "2",
            "--seed",
            "7",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "kpi.csv").open()))
    assert len(rows) == 3 * 2 * 288
    assert set(rows[0]) == {"series", "timestamp", "value", "label", "kind"}
    assert {r["series"] for r in rows} == {"kpi_0000", "kpi_0001", "kpi_0002"}
    assert rows[0]["timestamp"] == "2026-01-05T00:00:00Z"
    again = subprocess.run(
        [sys.executable, "-m", "training", "synth", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "already exists" in again.stderr


def test_too_short_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--days"):
        synthesize(tmp_path, 1, 1, 0)
