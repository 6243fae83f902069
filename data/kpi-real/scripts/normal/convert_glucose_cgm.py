"""Continuous glucose monitor readings (mg/dL), nominally every 5 min, Mar-Oct 2010 (bokeh_sampledata
CGM.csv.gz)."""

import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import pandas as pd

raw = _pkg.wheel_member("pypi/bokeh_sampledata-2026.1-*.whl", "bokeh_sampledata/_data/CGM.csv.gz")
g = pd.read_csv(io.BytesIO(raw), compression="gzip")
g["timestamp"] = pd.to_datetime(g["datetime"])  # local wall time of the device; timezone not recorded
g = g.drop_duplicates("timestamp", keep="first")
_pkg.write(
    pd.DataFrame({"series": "cgm_glucose", "timestamp": g["timestamp"], "value": g["glucose"]}), "glucose_cgm"
)
