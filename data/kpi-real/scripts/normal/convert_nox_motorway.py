"""Hourly NOx next to a Swiss motorway (robustbase::NOxEmissions, source Rene Locher, ZHAW).
Series: ambient NOx concentration [ppb], NOx emission of cars on the motorway [arbitrary units, a traffic
proxy], wind speed [m/s]; logs / square roots in the source are undone.
The source gives only an hour index (row names 1..8784 of one leap year) and day numbers 373-730;
the calendar year is NOT stated, so timestamps are anchored at a NOMINAL 2004-01-01 00:00 UTC.
Rows missing in the source (days with <20 complete hours were dropped) are gaps."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import numpy as np
import pandas as pd
import rlazy

d = _pkg.deb_rlib("deb/r-cran-robustbase_*.deb", "robustbase")
n = rlazy.load(os.path.join(d, "data", "Rdata"), "NOxEmissions")
r = np.asarray(n.index.astype(int))
ts = pd.Timestamp("2004-01-01") + pd.to_timedelta(r - 1, unit="h")
# consistency: julday - 364 equals day-of-year for (nearly) all rows
assert np.mean((ts.dayofyear.to_numpy() + 364) == n["julday"].astype(str).astype(int).to_numpy()) > 0.9
parts = [
    pd.DataFrame(
        {"series": "nox_ambient_ppb", "timestamp": ts, "value": np.round(np.exp(n["LNOx"].to_numpy()), 4)}
    ),
    pd.DataFrame(
        {"series": "nox_car_emission", "timestamp": ts, "value": np.round(np.exp(n["LNOxEm"].to_numpy()), 4)}
    ),
    pd.DataFrame(
        {"series": "wind_speed_ms", "timestamp": ts, "value": np.round(n["sqrtWS"].to_numpy() ** 2, 4)}
    ),
]
_pkg.write(pd.concat(parts), "nox_motorway")
