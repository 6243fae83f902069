#!/usr/bin/env python3
"""Rebuild sktime_toys/sktime_toys.csv from the sktime wheel (PyPI: sktime==1.2.0).

Two labelled toy series that sktime ships for its detection notebook
(sktime/datasets/data/yahoo/yahoo.csv is deliberately NOT used: Yahoo S5).

1) series "uk_seatbelts_ksi": sktime/datasets/data/seatbelts/seatbelts.csv
   (columns: date,KSI,label; 192 monthly points 1969-01..1984-12): UK drivers
   killed or seriously injured (R datasets::Seatbelts, Harvey & Durbin 1986);
   label = 1 only at 1983-02-01, the month the compulsory seat-belt law came
   into force (an intervention / change point).  Timestamps: first of month, UTC.

2) series "mitdb_ecg": source file: sktime/datasets/data/mitdb/mitdb.csv (columns: data,label; 7500 rows).
It is the "MIT-BIH ECG anomaly" toy series used in sktime's detection notebook
(examples/07_detection_anomaly_changepoints.ipynb); the wheel has no loader or
docstring for it, so the record number, sampling rate and the meaning of the
label (annotated abnormal beats / rhythm episode) are NOT documented in the
package.  label is copied as is.

The source has only a row index, so timestamps are synthetic: a regular 1 s
step from 2020-01-01T00:00:00Z (the real ECG rate, 360 Hz for MIT-BIH, or a
resampled rate, is unknown).

Usage: python3 convert_sktime_toys.py path/to/sktime-1.2.0-py3-none-any.whl [outdir]
Standard library only.
"""

import csv
import datetime as dt
import io
import os
import sys
import zipfile

START = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
STEP_S = 1


def main():
    whl = sys.argv[1]
    outdir = (
        sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "sktime_toys")
    )
    os.makedirs(outdir, exist_ok=True)
    z = zipfile.ZipFile(whl)
    with z.open("sktime/datasets/data/seatbelts/seatbelts.csv") as fh:
        sb = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    with z.open("sktime/datasets/data/mitdb/mitdb.csv") as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    lab = [int(r["label"]) for r in rows]
    with open(os.path.join(outdir, "sktime_toys.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["series", "timestamp", "value", "label"])
        for r in sb:
            w.writerow(["uk_seatbelts_ksi", r[""] + "T00:00:00Z", r["KSI"], int(r["label"])])
        print(f"uk_seatbelts_ksi: points={len(sb)} labelled={sum(int(r['label']) for r in sb)}")
        for i, r in enumerate(rows):
            t = (START + dt.timedelta(seconds=i * STEP_S)).strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow(["mitdb_ecg", t, r["data"], lab[i]])
    segs = [i for i in range(len(lab)) if lab[i] and (i == 0 or not lab[i - 1])]
    print(f"mitdb_ecg: points={len(rows)} labelled={sum(lab)} segments={len(segs)} starts={segs}")


if __name__ == "__main__":
    main()
