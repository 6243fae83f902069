"""Daily mean PM10 (ug/m3) at German rural background stations, 1998-2009 (R spacetime::air).
Keeps the 10 stations with the fewest missing days; missing days are simply absent (gaps)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import numpy as np
import pandas as pd
import rdata

d = _pkg.deb_rlib("deb/r-cran-spacetime_*.deb", "spacetime")
p = rdata.parser.parse_file(os.path.join(d, "data", "air.rda"))
objs, o = {}, p.object
while o is not None and o.info.type.name == "LIST":
    objs[o.tag.value.value.decode()] = o.value[0]
    o = o.value[1]
air = objs["air"]
attrs = rdata.conversion.convert(air.attributes, default_encoding="utf8")
dim = tuple(int(x) for x in np.asarray(attrs["dim"]))
m = np.asarray(air.value, dtype=float).reshape(dim, order="F")  # stations x days
names = [str(x) for x in np.asarray(attrs["dimnames"][0])]
dates = pd.to_datetime(np.asarray(rdata.conversion.convert(objs["dates"]), dtype=int), unit="D")
order = np.argsort(np.isnan(m).mean(axis=1), kind="stable")[:10]
parts = [pd.DataFrame({"series": f"pm10_{names[i]}", "timestamp": dates, "value": m[i]}) for i in order]
_pkg.write(pd.concat(parts), "de_pm10")
