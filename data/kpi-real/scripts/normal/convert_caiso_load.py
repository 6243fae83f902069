"""Hourly electricity load (MW) of CAISO and its utility areas, 2018 (orbit-ml sdist,
tests/resources/hourly1418CA_2018.csv)."""

import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import pandas as pd

raw = _pkg.tar_member(
    "pypi/orbit_ml-1.1.5.0.tar.gz", "orbit_ml-1.1.5.0/tests/resources/hourly1418CA_2018.csv"
)
o = pd.read_csv(io.BytesIO(raw))
# The file's hourly grid has no DST gaps or duplicates: it is taken as Pacific Standard Time (UTC-8).
ts = pd.to_datetime(o["Dates"]) + pd.Timedelta(hours=8)
cols = {
    "PGE": "caiso_pge",
    "SCE": "caiso_sce",
    "SDGE": "caiso_sdge",
    "VEA": "caiso_vea",
    "CAISO Total": "caiso_total",
}
parts = [pd.DataFrame({"series": n, "timestamp": ts, "value": o[c].to_numpy()}) for c, n in cols.items()]
_pkg.write(pd.concat(parts), "caiso_load")
