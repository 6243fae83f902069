"""UCR / KDD Cup 2021 anomaly series 135 (InternalBleeding16), as shipped in the aeon 1.6.0 wheel, as a
long CSV `series,timestamp,value,label`. The source has an index, not times: 5-minute steps from
2020-01-01 are used.

usage: python convert_aeon_ucr135.py 135_UCR_Anomaly_InternalBleeding16_TEST.csv OUT.csv
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path


def main(source: Path, out: Path) -> None:
    start = dt.datetime(2020, 1, 1)
    with source.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = ["series,timestamp,value,label"]
    for r in rows:
        ts = (start + dt.timedelta(minutes=5 * int(r["timestamp"]))).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"ucr135_InternalBleeding16,{ts},{r['value']},{int(r['is_anomaly'])}")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} rows, {sum(r['is_anomaly'] == '1' for r in rows)} anomalous, to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
