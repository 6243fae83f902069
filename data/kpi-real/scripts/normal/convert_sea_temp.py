"""Sea surface temperature (deg C), NERACOOS buoy B01, every 30 min, Feb 2016 - Mar 2017
(bokeh_sampledata)."""

import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import pandas as pd

raw = _pkg.wheel_member(
    "pypi/bokeh_sampledata-2026.1-*.whl", "bokeh_sampledata/_data/sea_surface_temperature.csv.gz"
)
s = pd.read_csv(io.BytesIO(raw), compression="gzip")
s.columns = ["timestamp", "value"]
s["timestamp"] = pd.to_datetime(s["timestamp"], utc=True)
s = s.drop_duplicates("timestamp")
s["series"] = "sst_neracoos_b01"
_pkg.write(s, "sea_temp")
