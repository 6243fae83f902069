"""Daily CTA 'L' station entries (thousands), 20 stations, 2001-2016 (R modeldata::Chicago)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _pkg
import numpy as np
import pandas as pd
import rlazy

d = _pkg.deb_rlib("deb/r-cran-modeldata_*.deb", "modeldata")
c = rlazy.load(os.path.join(d, "data", "Rdata"), "Chicago")
stations = list(rlazy.load(os.path.join(d, "data", "Rdata"), "stations"))
date = pd.to_datetime(np.asarray(c["date"], dtype=int), unit="D")  # R Date = days since 1970-01-01
# The 20 station columns are ridership lagged by 14 days (verified: Clark_Lake[t] == ridership[t-14]),
# so the true date of each station value is date - 14 days.
assert np.allclose(c["Clark_Lake"].to_numpy()[14:], c["ridership"].to_numpy()[:-14])
parts = []
for s in stations:
    parts.append(
        pd.DataFrame(
            {
                "series": f"cta_{s.lower()}",
                "timestamp": date - pd.Timedelta(days=14),
                "value": c[s].to_numpy(),
            }
        )
    )
_pkg.write(pd.concat(parts), "chicago_ridership")
