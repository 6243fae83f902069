#!/usr/bin/env python3
"""Rebuild waterflow_river/waterflow_river.csv from the river wheel (PyPI: river==0.26.1).

Source file: river/datasets/water-flow.csv (hourly water flow, l/s, through a
pipeline branch, 2022-03-20 .. 2022-05-11, donated by Tecnojest s.r.l.).
river's docstring (river/datasets/water_flow.py) says the series has four
anomalous segments: three "low value moments" (water losses / maintenance)
and one small pumping peak after the first two.  The file itself carries NO
label column, so the labels here are DERIVED by this script:

  label = 1 for every maximal run of points whose value is below
          LOW_FRACTION * median(series), extended on both sides while the
          value stays below RAMP_FRACTION * median (to include the ramps).

This reproduces the three low segments; the small pumping peak is NOT
labelled because the source gives no bounds for it and it is not separable
from normal variation by a simple rule.

Timestamps in the source carry a +01:00/+02:00 offset (Italian local time,
DST change on 2022-03-27); they are written here in UTC.

Usage: python3 convert_waterflow_river.py path/to/river-0.26.1-*.whl [outdir]
Standard library only.
"""

import csv
import datetime as dt
import io
import os
import statistics
import sys
import zipfile

LOW_FRACTION = 0.6
RAMP_FRACTION = 0.9


def main():
    whl = sys.argv[1]
    outdir = (
        sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "waterflow_river")
    )
    os.makedirs(outdir, exist_ok=True)
    with zipfile.ZipFile(whl).open("river/datasets/water-flow.csv") as fh:
        rows = list(csv.reader(io.TextIOWrapper(fh, encoding="utf-8")))[1:]
    ts = [dt.datetime.fromisoformat(r[0]).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for r in rows]
    vals = [float(r[1]) for r in rows]
    med = statistics.median(vals)
    lab = [1 if v < LOW_FRACTION * med else 0 for v in vals]
    # extend each run over its ramps
    changed = True
    while changed:
        changed = False
        for i in range(len(vals)):
            if (
                lab[i] == 0
                and vals[i] < RAMP_FRACTION * med
                and ((i > 0 and lab[i - 1] == 1) or (i + 1 < len(vals) and lab[i + 1] == 1))
            ):
                lab[i] = 1
                changed = True
    with open(os.path.join(outdir, "waterflow_river.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["series", "timestamp", "value", "label"])
        for t, r, flag in zip(ts, rows, lab, strict=True):
            w.writerow(["water_flow_lps", t, r[1], flag])
    segs = [(i, ts[i]) for i in range(len(lab)) if lab[i] and (i == 0 or not lab[i - 1])]
    print(f"points={len(vals)} median={med} labelled_points={sum(lab)} segments={len(segs)}")
    for s in segs:
        j = s[0]
        while j + 1 < len(lab) and lab[j + 1]:
            j += 1
        print("  segment", s[1], "->", ts[j], f"({j - s[0] + 1} points)")


if __name__ == "__main__":
    main()
