#!/usr/bin/env python3
"""Rebuild tcpd_river/*.csv from the river wheel (PyPI: river==0.26.1).

The wheel carries, under river/drift/datasets/, raw series of the Turing Change
Point Dataset (TCPD, van den Burg & Williams 2020) together with the human
change-point annotations (5 annotators each) in the matching .py files.

For two series (apple, brent_crude_oil) river ships the *raw* daily file while
the annotations refer to TCPD's sub-sampled series; this script applies TCPD's
own sub-sampling (from TCPD's get_apple.py / brent_spot/convert.py) so that the
annotation indices line up.  bitcoin is cut at 2019-06-19 as TCPD does.
airline_passengers (= TCPD jfk_passengers) is skipped on purpose (already known).

Output columns: series,timestamp,value,label
  label = 1 at an annotated change-point index, 0 elsewhere.
One file is written, tcpd_river_union.csv: label 1 at every index marked by
at least one annotator (annotators often differ by 1-3 indices, so an exact-
match majority vote is nearly empty; TCPD's own evaluation uses a margin of 5
indices).  The per-dataset count of indices that a strict majority marked is
printed for reference.
Multivariate series (occupancy, run_log, apple) are split into one series per
channel; TCPD annotates the whole record, so every channel carries the same
labels.

Usage: python3 convert_tcpd_river.py path/to/river-0.26.1-*.whl [outdir]
Standard library only.
"""

import ast
import csv
import datetime as dt
import io
import os
import sys
import zipfile

PKG = "river/drift/datasets/"


def annotations_from_py(src):
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "annotations":
                    return ast.literal_eval(kw.value)
    raise ValueError("no annotations found")


def read_csv(z, name):
    with z.open(PKG + name) as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))


def iso_day(d):
    return d.strftime("%Y-%m-%dT00:00:00Z")


def build(z):
    """Return {dataset: (timestamps, {channel: values}, annotations)}."""
    out = {}

    # occupancy: already sub-sampled (every 16th obs) by TCPD; 509 rows
    rows = read_csv(z, "occupancy.csv")
    ts = [dt.datetime.strptime(r["time"], "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows]
    names = {"V1": "temperature", "V2": "relative_humidity", "V3": "light", "V4": "co2"}
    ch = {names[k]: [r[k] for r in rows] for k in ["V1", "V2", "V3", "V4"]}
    out["occupancy"] = (ts, ch)

    # run_log: 376 rows, Pace and Distance
    rows = read_csv(z, "run_log.csv")
    ts = [dt.datetime.strptime(r["time"], "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows]
    out["run_log"] = (ts, {"pace": [r["Pace"] for r in rows], "distance": [r["Distance"] for r in rows]})

    # apple: TCPD drops the first row, keeps every 3rd, uses Close and Volume
    rows = read_csv(z, "apple.csv")[1:]
    rows = [r for i, r in enumerate(rows) if i % 3 == 0]
    ts = [r["Date"] + "T00:00:00Z" for r in rows]
    out["apple"] = (
        ts,
        {"close": [r["Close"] for r in rows], "volume": [str(int(float(r["Volume"]))) for r in rows]},
    )

    # bitcoin: river already dropped TCPD's first 500 rows; TCPD stops at 2019-06-19
    rows = read_csv(z, "bitcoin.csv")
    last = next(i for i, r in enumerate(rows) if r["date"] == "2019-06-19")
    rows = rows[: last + 1]
    out["bitcoin"] = ([r["date"] + "T00:00:00Z" for r in rows], {"price_usd": [r["price"] for r in rows]})

    # brent_crude_oil: TCPD keeps every 10th obs (from the oldest), then from the first sample in 2000
    rows = read_csv(z, "brent_crude_oil.csv")
    rows = [r for i, r in enumerate(rows) if i % 10 == 0]
    i2000 = next(i for i, r in enumerate(rows) if r["day"].endswith("2000"))
    rows = rows[i2000:]
    ts = [iso_day(dt.datetime.strptime(r["day"], "%m/%d/%Y")) for r in rows]
    out["brent_spot"] = (ts, {"usd_per_barrel": [r["DPB"] for r in rows]})

    # uk_coal_employment: yearly, 105 rows
    rows = read_csv(z, "uk_coal_employment.csv")
    out["uk_coal_employ"] = (
        [f"{int(r['Year']):04d}-01-01T00:00:00Z" for r in rows],
        {"employment": [r["Employment"] for r in rows]},
    )
    return out


PYFILE = {
    "occupancy": "occupancy.py",
    "run_log": "run_log.py",
    "apple": "apple.py",
    "bitcoin": "bitcoin.py",
    "brent_spot": "brent_crude_oil.py",
    "uk_coal_employ": "uk_coal_employment.py",
}


def main():
    whl = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "tcpd_river")
    os.makedirs(outdir, exist_ok=True)
    z = zipfile.ZipFile(whl)
    data = build(z)
    out = open(os.path.join(outdir, "tcpd_river_union.csv"), "w", newline="")  # noqa: SIM115 - closed below
    writers = {"union": csv.writer(out, lineterminator="\n")}
    writers["union"].writerow(["series", "timestamp", "value", "label"])
    summary = []
    for name, (ts, chans) in data.items():
        ann = annotations_from_py(z.read(PKG + PYFILE[name]).decode())
        n_ann = len(ann)
        counts = {}
        for cps in ann.values():
            for c in set(cps):
                counts[c] = counts.get(c, 0) + 1
        union = {c for c in counts}
        major = {c for c, k in counts.items() if k > n_ann / 2}
        n = len(ts)
        bad = [c for c in union if c >= n]
        if bad:
            raise SystemExit(f"{name}: annotation index beyond series length {n}: {bad}")
        for ch, vals in chans.items():
            assert len(vals) == n
            sid = f"{name}.{ch}" if len(chans) > 1 else name
            for i in range(n):
                writers["union"].writerow([sid, ts[i], vals[i], 1 if i in union else 0])
        summary.append((name, len(chans), n, n_ann, len(union), len(major)))
    out.close()
    print("dataset channels points annotators cps_union cps_majority")
    for s in summary:
        print(*s)


if __name__ == "__main__":
    main()
