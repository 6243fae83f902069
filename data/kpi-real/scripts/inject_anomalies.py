"""A semi-synthetic KPI corpus: real series (the normal/ converters' CSVs) with injected anomalies of
several kinds and a broad range of sizes, so false alarms are measured on real behaviour.

    python inject_anomalies.py SOURCE_FOLDER OUT.csv dev|heldout|normal SEED

dev: the tuning sources, heldout: the others (never tuned on), normal: the tuning sources without
injections (false-alarm rates on real behaviour). Each series is a random stretch of 3,000-9,000 points
with 1-3 anomalies after its first 20 %: spike, level_shift, temp_change, variance, flatline, drift or
season_break (one period of the daily or weekly cycle flattened), labelled on their points.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

SRC = Path(".")  # set from the command line
HELDOUT = ("ireland_wind", "caiso_load", "expedia_searches", "sea_temp", "taylor_elec")
DEV = ("akl_pedestrians", "chicago_ridership", "de_pm10", "nox_motorway", "glucose_cgm")
KINDS = ("spike", "level_shift", "temp_change", "variance", "flatline", "drift", "season_break")


def load(name):
    series = {}
    with (SRC / f"{name}.csv").open() as fh:
        r = csv.reader(fh)
        next(r)
        for k, t, v in r:
            ts = datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
            series.setdefault(k, []).append((ts, float(v)))
    return {k: np.array(sorted(v)) for k, v in series.items()}


def local_sigma(v, i, n=200):
    seg = v[max(0, i - n) : i]
    d = np.diff(seg)
    mad = np.median(np.abs(d - np.median(d))) * 1.4826 / np.sqrt(2) if d.size > 5 else 0
    return max(mad, 1e-3 * (np.median(np.abs(seg)) + 1e-9), 1e-9)


def period_points(ts):
    dt = np.median(np.diff(ts))
    if dt <= 3600:
        return round(86400 / dt)
    if dt <= 86400:
        return round(7 * 86400 / dt)
    return 0


def inject(ts, v, rng, n_anom):
    v = v.copy()
    n = len(v)
    lab = np.zeros(n, np.int8)
    kinds = [""] * n
    P = period_points(ts)
    first = int(0.2 * n)
    placed = 0
    tries = 0
    nonneg = (v >= 0).all()
    while placed < n_anom and tries < 50:
        tries += 1
        kind = KINDS[rng.integers(len(KINDS))]
        if kind == "season_break" and not (4 <= P <= n // 8):
            continue
        i = int(rng.integers(first, n - 50))
        if lab[max(0, i - n // 10) : min(n, i + n // 10)].any():
            continue
        sig = local_sigma(v, i)
        lvl = np.median(np.abs(v[max(0, i - 200) : i])) + 1e-9
        sign = 1 if rng.random() < 0.5 else -1
        if kind == "spike":
            k = int(rng.integers(1, 4))
            m = np.exp(rng.uniform(np.log(5), np.log(40)))
            if nonneg and sign < 0 and v[i] - m * sig < 0:
                sign = 1
            v[i : i + k] += sign * m * sig
            end = i + k
        elif kind == "level_shift":
            m = np.exp(rng.uniform(np.log(3), np.log(15)))
            delta = sign * m * sig
            if nonneg and sign < 0:
                delta = -min(m * sig, 0.6 * lvl)
            v[i:] += delta
            end = i + max(3, min(24, n - i))
        elif kind == "temp_change":
            k = int(rng.integers(6, 49))
            f = rng.uniform(0.3, 1.0) * sign
            if sign < 0:
                f = -rng.uniform(0.3, 0.7)
            v[i : i + k] = v[i : i + k] + f * np.maximum(np.abs(v[i : i + k]), lvl * 0.3)
            end = i + k
        elif kind == "variance":
            k = int(rng.integers(12, 97))
            m = rng.uniform(3, 8)
            v[i : i + k] += rng.normal(0, m * sig, min(k, n - i))
            if nonneg:
                v[i : i + k] = np.maximum(v[i : i + k], 0)
            end = i + k
        elif kind == "flatline":
            k = int(rng.integers(12, 97))
            if np.ptp(v[i : i + k]) <= 2 * sig:
                continue
            v[i : i + k] = v[i]
            end = i + k
        elif kind == "drift":
            k = int(rng.integers(24, 201))
            m = np.exp(rng.uniform(np.log(5), np.log(20)))
            ramp = np.linspace(0, 1, min(k, n - i)) * sign * m * sig
            if nonneg and sign < 0:
                ramp = -np.linspace(0, 1, min(k, n - i)) * min(m * sig, 0.6 * lvl)
            v[i : i + k] += ramp
            v[i + k :] += ramp[-1]
            end = i + k
        else:  # season_break: one period replaced by its mean (the cycle goes missing)
            k = P
            seg = v[i : i + k]
            v[i : i + k] = seg.mean() + 0.3 * (seg - seg.mean()) * rng.uniform(-0.5, 0.5)
            end = i + k
        end = min(end, n)
        lab[i:end] = 1
        for j in range(i, end):
            kinds[j] = kind
        placed += 1
    return v, lab, kinds


def build(which, seed, out):
    rng = np.random.default_rng(seed)
    names = HELDOUT if which == "heldout" else DEV
    rows = []
    for name in names:
        for key, arr in load(name).items():
            ts, v = arr[:, 0], arr[:, 1]
            n = len(v)
            if n < 1500:
                continue
            L = int(min(n, rng.integers(3000, 9001)))
            s = int(rng.integers(0, n - L + 1))
            ts, v = ts[s : s + L], v[s : s + L]
            if which == "normal":
                lab, kinds = np.zeros(L, np.int8), [""] * L
            else:
                v, lab, kinds = inject(ts, v, rng, int(rng.integers(1, 4)))
            rows += [
                (key, int(t), repr(float(x)), int(lb), kd)
                for t, x, lb, kd in zip(ts, v, lab, kinds, strict=True)
            ]
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series", "timestamp", "value", "label", "kind"])
        w.writerows(rows)


if __name__ == "__main__":
    SRC = Path(sys.argv[1])
    build(sys.argv[3], int(sys.argv[4]), sys.argv[2])
