"""How well the detector's published normal band (lower, upper) fits a labelled set: the share of the
normal points inside it, and the share of labelled anomaly windows with at least one point outside it
(per kind where the data names kinds). Points the band does not cover (warming, a series whose scale
is still unknown) count for neither."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from training.kpi.labels import segments
from training.kpi.windows import SeriesData


@dataclass
class BandCoverage:
    normal_points: int = 0
    normal_inside: int = 0
    windows: int = 0
    windows_outside: int = 0
    per_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [windows outside, windows]

    @property
    def inside_share(self) -> float:
        return self.normal_inside / self.normal_points if self.normal_points else float("nan")

    @property
    def outside_share(self) -> float:
        return self.windows_outside / self.windows if self.windows else float("nan")

    def line(self) -> str:
        held = f"normal band: holds {self.inside_share:.1%} of {self.normal_points:,}"
        if not self.windows:
            # Unlabelled data (or no anomaly where the band was judged): every point counts as normal,
            # and there is no window to find outside the band, so no share of windows (it would be 0/0).
            return f"{held} points (none labelled anomalous); no labelled anomaly windows to check against it"
        outside = f"{self.windows_outside} of {self.windows} labelled windows ({self.outside_share:.0%})"
        text = f"{held} normal points; {outside} have a point outside it"
        if len(self.per_kind) > 1:
            text += " (" + ", ".join(f"{k} {o}/{n}" for k, (o, n) in sorted(self.per_kind.items())) + ")"
        return text

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "inside_share": self.inside_share, "outside_share": self.outside_share}


def band_coverage(
    series: list[SeriesData], ends: list[np.ndarray], lower: list[np.ndarray], upper: list[np.ndarray],
    starts: list[int],
) -> BandCoverage:  # fmt: skip
    """Each series' band at its scored grid indices `ends`, judged from grid index `starts[i]` on (a
    labelled window counts if it begins there or later)."""
    out = BandCoverage()
    for s, e, lo, up, start in zip(series, ends, lower, upper, starts, strict=True):
        n = len(s.grid)
        low, high = np.full(n, np.nan), np.full(n, np.nan)
        low[e], high[e] = lo, up
        known = np.isfinite(low) & np.isfinite(high) & ~s.grid.missing
        known[:start] = False
        v = s.grid.values
        outside = known & ((v < low) | (v > high))
        normal = known & (s.labels == 0)
        out.normal_points += int(normal.sum())
        out.normal_inside += int((normal & ~outside).sum())
        for a, b in segments(s.labels):
            if a < start or not known[a:b].any():
                continue
            hit = bool(outside[a:b].any())
            out.windows += 1
            out.windows_outside += hit
            counts = out.per_kind.setdefault(str(s.kinds[a] or "anomaly"), [0, 0])
            counts[0] += hit
            counts[1] += 1
    return out
