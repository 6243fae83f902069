#!/usr/bin/env python3
"""Rebuild pvanalytics_injected/pvanalytics_injected.csv from the pvanalytics wheel
(PyPI: pvanalytics==0.2.2).

Three min-max-normalised, 15-minute AC-power series from real PV inverters
(PV Fleets Initiative / DuraMAT DataHub "inverter clipping ML training set -
real data"), each with a boolean column that marks anomalies that the
pvanalytics authors INSERTED by hand (semi-synthetic labels):

  pvanalytics/data/ac_power_inv_7539_outliers.csv         column "outlier"
  pvanalytics/data/ac_power_inv_2173_stale_data.csv       column "stale_data_mask"
  pvanalytics/data/ac_power_inv_2173_interpolated_data.csv column "interpolated_data_mask"

(Per pvanalytics' docs/examples/outliers/hampel-outlier-detection.py and
docs/examples/gaps/stale-data.py.)  pvlib_data_shift.csv is NOT used: it is
a simulated pvlib series.

Usage: python3 convert_pvanalytics_injected.py path/to/pvanalytics-0.2.2-py3-none-any.whl [outdir]
Standard library only.
"""

import csv
import datetime as dt
import io
import os
import sys
import zipfile

FILES = [
    ("inv7539_ac_power_outliers", "pvanalytics/data/ac_power_inv_7539_outliers.csv", "outlier"),
    ("inv2173_ac_power_stale", "pvanalytics/data/ac_power_inv_2173_stale_data.csv", "stale_data_mask"),
    (
        "inv2173_ac_power_interpolated",
        "pvanalytics/data/ac_power_inv_2173_interpolated_data.csv",
        "interpolated_data_mask",
    ),
]


def to_utc(s):
    d = dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        raise ValueError("naive timestamp " + s)
    return d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    whl = sys.argv[1]
    outdir = (
        sys.argv[2]
        if len(sys.argv) > 2
        else os.path.join(os.path.dirname(__file__), "..", "pvanalytics_injected")
    )
    os.makedirs(outdir, exist_ok=True)
    z = zipfile.ZipFile(whl)
    with open(os.path.join(outdir, "pvanalytics_injected.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["series", "timestamp", "value", "label"])
        for sid, path, col in FILES:
            with z.open(path) as fh:
                rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
            lab = [1 if r[col].strip().lower() == "true" else 0 for r in rows]
            for r, flag in zip(rows, lab, strict=True):
                w.writerow([sid, to_utc(r["timestamp"]), r["value_normalized"], flag])
            segs = sum(1 for i in range(len(lab)) if lab[i] and (i == 0 or not lab[i - 1]))
            print(
                f"{sid}: points={len(rows)} labelled={sum(lab)} segments={segs} "
                f"{rows[0]['timestamp']} .. {rows[-1]['timestamp']}"
            )


if __name__ == "__main__":
    main()
