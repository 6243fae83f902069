"""RKI SurvStat outbreak series from the R package `surveillance` (Debian r-cran-surveillance 1.20.3)
as a long CSV `series,timestamp,value,label`: 14 weekly case counts, label 1 inside the defined outbreak.

usage: python convert_surveillance.py SURVEILLANCE_DATA_DIR OUT_DIR   (needs `pip install rdata`)
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import rdata

SERIES = ("m1", "m2", "m3", "m4", "m5", "q1_nrwh", "q2", "s1", "s2", "s3", "k1", "n1", "n2", "h1_nrwrp")


def main(data: Path, out: Path) -> None:
    rows = ["series,timestamp,value,label"]
    for key in SERIES:
        parsed = rdata.parser.parse_file(data / f"{key}.RData")
        obj = rdata.conversion.convert(parsed, default_encoding="latin1")[key]
        observed = np.asarray(obj["observed"]).ravel()
        state = np.asarray(obj["state"]).ravel().astype(int)
        year, week = (int(x) for x in np.asarray(obj["start"]).ravel())
        start = dt.datetime.fromisocalendar(year, week, 1)  # the source has weeks only: their Mondays
        for i, (value, label) in enumerate(zip(observed, state, strict=True)):
            ts = (start + dt.timedelta(days=7 * i)).strftime("%Y-%m-%dT00:00:00Z")
            rows.append(f"rki_{key},{ts},{int(value)},{int(label)}")
    (out / "rki_survstat.csv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(rows) - 1} rows of {len(SERIES)} series to {out / 'rki_survstat.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
