"""Labelled synthetic KPI series: seasonality, trend and noise, with injected anomalies of known kinds.

For demos and tests of the metric path; real KPI data is what the model is built for.
Each series is a regular grid (`interval_minutes`) of `days` days. Anomalies are
windows labelled 1, each with the kind that made it:

  spike          a few points far above the series
  dip            a few points far below it
  level_shift    the level moves and stays moved for hours
  variance       the noise grows several-fold for hours
  flatline       the value sticks (a stuck sensor) for hours
  drift          a slow ramp away from normal over hours
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

KINDS = ("spike", "dip", "level_shift", "variance", "flatline", "drift")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, so weekly seasonality starts at a week start


@dataclass(frozen=True)
class SynthSeries:
    name: str
    timestamps: list[datetime]
    values: np.ndarray  # float64
    labels: np.ndarray  # 1 = anomalous point
    kinds: list[str]  # anomaly kind per point, "" for normal points


def generate_series(
    name: str, days: int, rng: np.random.Generator, interval_minutes: int = 5, anomalies_per_week: float = 6.0
) -> SynthSeries:
    per_day = 24 * 60 // interval_minutes
    n = days * per_day
    t = np.arange(n)
    level = rng.uniform(50, 500)
    daily = rng.uniform(0.1, 0.4) * level * np.sin(2 * np.pi * t / per_day - rng.uniform(0, 2 * np.pi))
    weekly = rng.uniform(0.0, 0.15) * level * np.sin(2 * np.pi * t / (7 * per_day))
    trend = rng.uniform(-0.1, 0.1) * level * t / n
    noise_sd = rng.uniform(0.02, 0.06) * level
    values = level + daily + weekly + trend + rng.normal(0, noise_sd, n)
    labels = np.zeros(n, dtype=np.int8)
    kinds = [""] * n
    n_anomalies = rng.poisson(anomalies_per_week * days / 7)
    warmup = per_day  # the first day stays normal, so a model or baseline has history
    for _ in range(n_anomalies):
        kind = KINDS[rng.integers(len(KINDS))]
        length = rng.integers(1, 4) if kind in ("spike", "dip") else rng.integers(per_day // 12, per_day // 3)
        start = int(rng.integers(warmup, max(warmup + 1, n - length)))
        end = min(n, start + int(length))
        if labels[max(0, start - 12) : end + 12].any():
            continue  # keep anomalies apart, so each label window has one kind
        _inject(values, start, end, kind, noise_sd, level, rng)
        labels[start:end] = 1
        for i in range(start, end):
            kinds[i] = kind
    timestamps = [START + timedelta(minutes=interval_minutes * int(i)) for i in t]
    return SynthSeries(name, timestamps, values, labels, kinds)


def _inject(
    values: np.ndarray, start: int, end: int, kind: str, sd: float, level: float, rng: np.random.Generator
) -> None:
    span = end - start
    if kind == "spike":
        values[start:end] += rng.uniform(8, 14) * sd
    elif kind == "dip":
        values[start:end] -= rng.uniform(8, 14) * sd
    elif kind == "level_shift":
        values[start:end] += rng.choice([-1, 1]) * rng.uniform(0.15, 0.3) * level
    elif kind == "variance":
        values[start:end] += rng.normal(0, sd * rng.uniform(3, 6), span)
    elif kind == "flatline":
        values[start:end] = values[start]
    elif kind == "drift":
        values[start:end] += rng.choice([-1, 1]) * np.linspace(0, rng.uniform(0.2, 0.4) * level, span)
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}")


def write_long_csv(series: list[SynthSeries], path: Path) -> int:
    """One long file `series,timestamp,value,label,kind`; returns the number of rows."""
    rows = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["series", "timestamp", "value", "label", "kind"])
        for s in series:
            for ts, v, lab, kind in zip(s.timestamps, s.values, s.labels, s.kinds, strict=True):
                out.writerow([s.name, ts.isoformat().replace("+00:00", "Z"), f"{v:.6g}", int(lab), kind])
                rows += 1
    return rows


def synthesize(out: Path, n_series: int, days: int, seed: int, interval_minutes: int = 5) -> Path:
    """Write `<out>/kpi.csv` with `n_series` series; refuses to overwrite."""
    if n_series < 1 or days < 2:
        raise ValueError("--series must be >= 1 and --days >= 2 (the first day is kept normal)")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "kpi.csv"
    if path.exists():
        raise FileExistsError(f"{path} already exists; pick another --out or delete it")
    rng = np.random.default_rng(seed)
    series = [generate_series(f"kpi_{i:04d}", days, rng, interval_minutes) for i in range(n_series)]
    write_long_csv(series, path)
    return path
