"""taylor: half-hourly electricity demand, England & Wales, 5 Jun - 27 Aug 2000 (R forecast::taylor)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import pandas as pd
import rlazy

d = _pkg.deb_rlib("deb/r-cran-forecast_*.deb", "forecast")
v = rlazy.load(os.path.join(d, "data", "Rdata"), "taylor").to_numpy()
assert len(v) == 4032
# Series starts Monday 5 June 2000 00:00 UK local time (BST = UTC+1 for the whole span).
ts = pd.date_range("2000-06-05 00:00", periods=len(v), freq="30min", tz="Europe/London")
_pkg.write(pd.DataFrame({"series": "taylor_uk_demand_mw", "timestamp": ts, "value": v}), "taylor_elec")
