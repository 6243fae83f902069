"""The synthetic KPI generator: reproducible, labelled, every anomaly kind, a clear CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import training.kpi.synth as synth_module
from training.cli import main as cli_main
from training.kpi.load import load_csv
from training.kpi.synth import (
    KINDS,
    NONSTATIONARY_KINDS,
    PERSONALITIES,
    anomaly_windows,
    generate_nonstationary_series,
    generate_series,
    generate_set,
    heldout_config,
    synthesize,
    tuning_config,
    write_set,
)

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


# --- the stationary profile is frozen: the demo, the tiny bundle and the quality test depend on it

STATIONARY_CSV_SHA256 = "b386e1771ad5be81e1dced450c00cdc8d9e4f00a5c3f42892061ef9d00d762ac"
STATIONARY_SERIES_SHA256 = "218db2053b8e282937e58cb02815867d92b39cba66a3e769951bc911f0ed46f0"


def test_stationary_output_is_unchanged(tmp_path: Path) -> None:
    # Checksums taken before the non-stationary profile was added.
    path = synthesize(tmp_path, 3, 7, 11)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == STATIONARY_CSV_SHA256
    s = generate_series("s", 14, np.random.default_rng(3))
    digest = hashlib.sha256(s.values.tobytes() + s.labels.tobytes() + "|".join(s.kinds).encode())
    assert digest.hexdigest() == STATIONARY_SERIES_SHA256
    assert not (tmp_path / "series.json").exists()


# --- the non-stationary profile


def _daily(values: np.ndarray, per_day: int, stat) -> np.ndarray:
    return np.array([stat(values[i : i + per_day]) for i in range(0, len(values) - per_day + 1, per_day)])


def _noise_unit(x: np.ndarray) -> float:
    """Noise from first differences, the 1 % tails clipped so a burst does not decide it."""
    d = np.diff(x)
    return float(np.std(np.clip(d, *np.percentile(d, [1, 99]))) / np.sqrt(2))


def test_normal_behaviour_is_non_stationary() -> None:
    # No anomalies at all: what moves here is normal, and a detector must not alarm on it.
    series = generate_set(tuning_config(n_series=24, days=14, seed=2, anomalies_per_week=0))
    assert all(not s.labels.any() for s in series)
    moved, noise_changed, counts = [], [], []
    for s in series:
        if s.personality == "counts":
            counts.append(s)
            continue
        units = _daily(s.values, 288, _noise_unit)
        medians = _daily(s.values, 288, np.median)
        moved.append(np.ptp(medians) / np.median(units))
        noise_changed.append(units.max() / units.min())
    assert len(moved) >= 12 and counts
    # The day's median moves by several noise units in most series, the noise by half or more.
    assert np.mean(np.array(moved) >= 3) >= 0.8, moved
    assert np.mean(np.array(noise_changed) >= 1.4) >= 0.8, noise_changed
    for s in counts:  # counts: the daily rate moves (drift, trend, weekends)
        means = _daily(s.values, 288, np.mean)
        assert means.max() >= 1.4 * means.min(), means


def test_labels_are_windows_of_every_kind() -> None:
    seen: Counter[str] = Counter()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        personality = PERSONALITIES[seed % len(PERSONALITIES)]
        s = generate_nonstationary_series("s", 14, rng, 5, 6.0, personality)
        assert s.personality == personality and np.isfinite(s.values).all()
        assert all((lab == 1) == (kind != "") for lab, kind in zip(s.labels, s.kinds, strict=True))
        assert not s.labels[:288].any()  # the first day is normal history
        windows = anomaly_windows(s.labels, s.kinds)
        for (_, end, _), (start, _, _) in itertools.pairwise(windows):
            assert start - end >= 12  # apart: every window has one kind
        for start, end, kind in windows:
            seen[kind] += 1
            if kind in ("spike", "dip"):
                assert end - start <= 3
            elif kind == "level_shift":
                assert 3 <= end - start <= 2 * 12  # the onset only: the new level is normal
            else:
                assert end - start >= 12
    assert set(seen) == set(NONSTATIONARY_KINDS), seen


@pytest.mark.parametrize("personality", ["latency", "seasonal", "bursty"])
def test_level_shifts_persist_and_nothing_changes_outside_the_windows(personality: str) -> None:
    # Same seed with and without anomalies: the normal parts are drawn first, so the difference is
    # exactly what the anomalies did.
    clean = generate_nonstationary_series("s", 21, np.random.default_rng(5), 5, 0.0, personality)
    dirty = generate_nonstationary_series("s", 21, np.random.default_rng(5), 5, 8.0, personality)
    diff = dirty.values - clean.values
    tol = 1e-9 * np.abs(clean.values).max()
    normal = dirty.labels == 0
    windows = anomaly_windows(dirty.labels, dirty.kinds)
    assert len(windows) >= 8
    # Between windows the difference is constant: zero, or a level some earlier window left behind.
    steps = np.abs(np.diff(diff))[normal[1:] & normal[:-1]]
    assert np.mean(steps <= tol) >= 0.99  # the rest: the floor at zero clipping a trough
    persistent = {"level_shift", "trend_change"}
    for start, end, kind in windows:
        if end >= len(diff):
            continue
        before = diff[start - 1] if start else 0.0
        left_behind = abs(diff[end] - before)
        if kind in persistent:  # the new level stays, unlabelled after the window
            assert left_behind > 3 * _noise_unit(clean.values[start - 288 : start]), kind
        else:
            assert left_behind <= tol, kind


def test_irregular_timestamps_jitter_drops_and_gaps() -> None:
    s = generate_nonstationary_series(
        "s", 14, np.random.default_rng(7), 5, 1.5, "seasonal", jitter=0.2, drop_rate=0.02, gaps_per_week=2
    )
    seconds = np.array([(t - synth_module.START).total_seconds() for t in s.timestamps])
    assert all(t.microsecond == 0 for t in s.timestamps)
    assert (np.diff(seconds) > 0).all()
    offsets = seconds - 300 * np.rint(seconds / 300)
    assert np.abs(offsets).max() <= 60 and np.mean(offsets != 0) > 0.9  # jitter: at most 20 % of 5 min
    assert len(np.unique(np.rint(seconds / 300))) == len(seconds)  # still one point per slot
    missing = 1 - len(s.values) / (14 * 288)
    assert 0.02 < missing < 0.5
    assert np.diff(seconds).max() >= 2 * 3600  # an outage of hours
    assert s.labels.sum() == sum(e - b for b, e, _ in anomaly_windows(s.labels, s.kinds))
    regular = generate_nonstationary_series("r", 3, np.random.default_rng(7), 60)
    assert np.all(np.diff([t.timestamp() for t in regular.timestamps]) == 3600) and len(regular.values) == 72
    with pytest.raises(ValueError, match="divide a day"):
        generate_nonstationary_series("x", 3, np.random.default_rng(0), 7)
    with pytest.raises(ValueError, match="jitter"):
        generate_nonstationary_series("x", 3, np.random.default_rng(0), 5, jitter=0.5)


def test_count_series_are_integers_with_many_zeros_and_flatline_at_zero() -> None:
    zeros = []
    flatlines = 0
    for seed in range(8):
        s = generate_nonstationary_series("c", 14, np.random.default_rng(seed), 5, personality="counts")
        assert (s.values >= 0).all() and (s.values == np.round(s.values)).all()
        zeros.append(np.mean(s.values == 0))
        busy = generate_nonstationary_series("c", 14, np.random.default_rng(seed), 5, 6.0, "counts")
        for start, end, kind in anomaly_windows(busy.labels, busy.kinds):
            if kind == "flatline":  # stuck at zero where at least 10 counts were expected
                assert (busy.values[start:end] == 0).all()
                flatlines += 1
    assert min(zeros) >= 0.1 and np.median(zeros) >= 0.25, zeros
    assert flatlines


def test_heldout_preset_differs_from_tuning() -> None:
    tuning, held = tuning_config(), heldout_config()
    assert held == heldout_config()  # a preset: fixed
    for name in ("seed", "days", "intervals", "personalities", "anomalies_per_week", "jitter", "prefix"):
        assert getattr(held, name) != getattr(tuning, name), name
    assert len(held.intervals) > 1 and set(dict(held.personalities)) == set(PERSONALITIES)
    assert "never used for tuning: report it on its own line" in " ".join(synth_module.__doc__.split())
    # A short held-out cut: every series is named apart from the tuning set's, intervals are mixed.
    short = generate_set(dataclasses.replace(held, days=3))
    assert all(s.name.startswith("heldout_") for s in short)
    steps = {round(float(np.median(np.diff([t.timestamp() for t in s.timestamps])))) for s in short}
    assert len(steps) > 1


def test_csv_round_trips_through_the_loader(tmp_path: Path) -> None:
    cfg = dataclasses.replace(tuning_config(n_series=4, days=3, seed=4, anomalies_per_week=7), jitter_share=1)
    path = write_set(tmp_path, cfg)
    series = {s.name: s for s in generate_set(cfg)}
    data = load_csv(path)
    assert list(data.series) == list(series) and data.has_labels and data.has_kinds
    for name, raw in data.series.items():
        s = series[name]
        np.testing.assert_array_equal(raw.timestamps, [t.timestamp() for t in s.timestamps])
        np.testing.assert_allclose(raw.values, s.values, rtol=1e-5, atol=1e-9)
        assert raw.labels.tolist() == s.labels.tolist() and raw.kinds == s.kinds
    stamps = [line.split(",")[1] for line in path.read_text().splitlines()[1:]]
    assert all(re.fullmatch(r"2026-01-\d\dT\d\d:\d\d:\d\dZ", t) for t in stamps[1:])  # seconds, then Z
    assert len({t[-3:] for t in stamps}) > 10  # jitter keeps its seconds
    meta = json.loads((tmp_path / "series.json").read_text())
    assert {m["personality"] for m in meta.values()} <= set(PERSONALITIES)
    assert {m["interval_minutes"] for m in meta.values()} == {5}
    with pytest.raises(FileExistsError):
        write_set(tmp_path, cfg)


def test_cli_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["synth", "--profile", "nonstationary", "--series", "2", "--days", "3", "--seed", "1"]
    assert cli_main([*argv, "--out", str(tmp_path / "ns"), "--anomalies-per-week", "5"]) == 0
    rows = list(csv.DictReader((tmp_path / "ns" / "kpi.csv").open()))
    assert {r["series"] for r in rows} == {"kpi_0000", "kpi_0001"}
    assert {r["kind"] for r in rows} <= {"", *NONSTATIONARY_KINDS}
    assert "nonstationary series" in capsys.readouterr().out
    assert cli_main(["synth", "--profile", "heldout", "--out", str(tmp_path / "h"), "--seed", "3"]) == 1
    assert "fixed preset" in capsys.readouterr().err and not (tmp_path / "h").exists()
    assert cli_main(["synth", "--profile", "sideways", "--out", str(tmp_path / "x")]) == 2
