"""Daily average wind speed (knots) at 12 Irish meteorological stations, 1961-1978 (R gstat::wind)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import pandas as pd
import rdata

d = _pkg.deb_rlib("deb/r-cran-gstat_*.deb", "gstat")
w = rdata.conversion.convert(rdata.parser.parse_file(os.path.join(d, "data", "wind.rda")))["wind"]
ts = pd.to_datetime(
    dict(year=1900 + w["year"].astype(int), month=w["month"].astype(int), day=w["day"].astype(int))
)
parts = [
    pd.DataFrame({"series": f"wind_{s}", "timestamp": ts, "value": w[s].to_numpy()})
    for s in ["RPT", "VAL", "ROS", "KIL", "SHA", "BIR", "DUB", "CLA", "MUL", "CLO", "BEL", "MAL"]
]
_pkg.write(pd.concat(parts), "ireland_wind")
