"""Series state for the detector: rows of preallocated matrices, one row per series.

Each series has a row of float64 scalars (`Col` names the columns) and, for each seasonal candidate
(params.SEASONS), a profile and a scale per phase bin, float32 and NaN until the bin is first seen.
Everything is bounded by construction: nothing grows with time. A row is what the worker keeps per
series besides its window, what training primes from a series' own history (`StateFile`), and what
the offline scorer runs point by point; `schemas/detect/decide.py` reads and updates rows in batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.detect.params import SEASONS, TAIL_PARTS, DetectorParams


class Col:
    """Scalar columns of a series' row."""

    SEEN = 0  # points decided so far
    INTERVAL = 1  # the series' grid interval, seconds (its seasonal phase comes from it)
    TYPICAL_SCALE = 2  # the series' long-run mean window scale
    STEP_MAX = 3  # the largest recent step |x(t) - x(t-1)|, decaying
    RUN = 4  # points in the current run of equal values
    LONGEST_RUN = 5  # the longest recent run, decaying
    CHANGES = 6  # times the value has changed (capped)
    EVENT_BAR = 7  # raised after an event (0 when none): what the next event must reach
    ALERT_BAR = 8  # raised after an alert (0 when none): what the next alert must reach
    ACC_SUM = 9  # accumulated excess surprise of recent points
    ACC_COUNT = 10  # how many points it holds, decayed alike
    PLAIN_LEVEL = 11  # the level model without a season (what a season must beat)
    PLAIN_ERROR = 12  # its mean absolute one-step error
    DRIFT_FAST = 13
    DRIFT_SLOW = 14
    DRIFT_SCALE = 15
    FAR_LEVEL = 16
    FAR_SCALE = 17
    FLOOR = 18  # the lowest value the series has had: a count idles there
    TAILS = 19  # (quantile, mean excess) per tail part, in TAIL_PARTS order
    SEASON_FIRST = TAILS + 2 * len(
        TAIL_PARTS
    )  # per candidate: level, error, predictions, points/period, bins
    SEASON_FIELDS = 5
    SIZE = SEASON_FIRST + SEASON_FIELDS * len(SEASONS)


MIN_POINTS_PER_PERIOD = 8.0  # a season of fewer points is no profile


def season_col(candidate: int, field: int) -> int:
    """Column of a seasonal candidate's field: 0 level, 1 error, 2 predictions, 3 points/period, 4 bins."""
    return Col.SEASON_FIRST + Col.SEASON_FIELDS * candidate + field


# Where each candidate's bins start in the profile and scale matrices.
BIN_OFFSETS = tuple(np.cumsum([0] + [bins for _, bins in SEASONS.values()])[:-1].tolist())
BINS_TOTAL = sum(bins for _, bins in SEASONS.values())
# Columns a new series starts without (NaN): filled from its first point.
_UNSET = (Col.PLAIN_LEVEL, Col.DRIFT_FAST, Col.DRIFT_SLOW, Col.FAR_LEVEL, Col.FLOOR)
# Short-term position, forgotten when a primed series starts (its level may have moved since training);
# what it learnt of its scales, tails, runs and seasons is kept.
_POSITION = (
    Col.RUN,
    Col.EVENT_BAR,
    Col.ALERT_BAR,
    Col.ACC_SUM,
    Col.ACC_COUNT,
    Col.PLAIN_LEVEL,
)


def bytes_per_row() -> int:
    return Col.SIZE * 8 + 2 * BINS_TOTAL * 4


def new_row(params: DetectorParams, interval_s: float) -> np.ndarray:
    """A new series' scalars, from the priors (a part without one: quantile 0, mean excess 1)."""
    row = np.zeros(Col.SIZE, dtype=np.float64)
    row[Col.INTERVAL] = interval_s
    row[list(_UNSET)] = np.nan
    for i, part in enumerate(TAIL_PARTS):
        prior = params.priors.get(part)
        row[Col.TAILS + 2 * i] = prior.quantile if prior else 0.0
        row[Col.TAILS + 2 * i + 1] = prior.excess if prior else 1.0
    for c, (period_s, max_bins) in enumerate(SEASONS.values()):
        per_period = period_s / interval_s
        usable = params.seasonal and MIN_POINTS_PER_PERIOD <= per_period <= 1e6
        row[season_col(c, 0)] = np.nan
        row[season_col(c, 3)] = per_period if usable else 0.0
        row[season_col(c, 4)] = min(max_bins, math.ceil(per_period - 1e-9)) if usable else 0.0
    return row


def forget_position(row: np.ndarray) -> None:
    """Keep what a primed row learnt, forget where the series was (see _POSITION). The drift part's
    means restart at the long-run level (not at the first point, which may be an outlier that the
    slow mean would then remember for hundreds of points); the long-run level and floor are kept."""
    far_level, floor = row[Col.FAR_LEVEL], row[Col.FLOOR]
    row[list(_POSITION)] = 0.0
    row[list(_UNSET)] = np.nan
    row[Col.FAR_LEVEL], row[Col.FLOOR] = far_level, floor
    row[Col.DRIFT_FAST] = row[Col.DRIFT_SLOW] = far_level
    for c in range(len(SEASONS)):
        row[season_col(c, 0)] = np.nan


@dataclass
class StateMatrices:
    """The detector's state of many series: row i of each matrix is one series."""

    scalars: np.ndarray  # float64 [n, Col.SIZE]
    profiles: np.ndarray  # float32 [n, BINS_TOTAL]: the value at each phase, less the level
    scales: np.ndarray  # float32 [n, BINS_TOTAL]: the mean absolute prediction error at each phase

    @classmethod
    def empty(cls, n: int) -> StateMatrices:
        return cls(
            np.zeros((n, Col.SIZE)),
            np.full((n, BINS_TOTAL), np.nan, dtype=np.float32),
            np.full((n, BINS_TOTAL), np.nan, dtype=np.float32),
        )

    def __len__(self) -> int:
        return self.scalars.shape[0]

    def grown(self, n: int) -> StateMatrices:
        """The same rows in matrices of n rows (n >= len)."""
        out = StateMatrices.empty(n)
        k = len(self)
        out.scalars[:k], out.profiles[:k], out.scales[:k] = self.scalars, self.profiles, self.scales
        return out

    def start(self, i: int, params: DetectorParams, interval_s: float, primed: StateMatrices | None = None,
              primed_row: int = 0) -> None:  # fmt: skip
        """Row i becomes a new series: from the priors, or from a primed row (its position forgotten)."""
        if primed is not None:
            self.scalars[i] = primed.scalars[primed_row]
            forget_position(self.scalars[i])
            self.profiles[i] = primed.profiles[primed_row]
            self.scales[i] = primed.scales[primed_row]
            return
        self.scalars[i] = new_row(params, interval_s)
        self.profiles[i] = np.nan
        self.scales[i] = np.nan


class StateFile:
    """Primed states of the series training saw, by series key: `series_state.npz` in a metric bundle.

    Loaded with allow_pickle=False (plain arrays only). A state whose interval differs from the
    series' grid in the manifest, or whose layout is not this version's, is refused as a whole."""

    NAME = "series_state.npz"

    def __init__(self, keys: list[str], states: StateMatrices) -> None:
        self.keys = keys
        self.states = states
        self.index = {k: i for i, k in enumerate(keys)}

    def interval(self, key: str) -> float:
        """The grid interval a series' primed state was made on."""
        return float(self.states.scalars[self.index[key], Col.INTERVAL])

    def write(self, path: Path) -> None:
        np.savez_compressed(
            path, keys=np.array(self.keys, dtype=str), scalars=self.states.scalars,
            profiles=self.states.profiles, scales=self.states.scales,
            layout=np.array([Col.SIZE, *BIN_OFFSETS, BINS_TOTAL]),
        )  # fmt: skip

    @classmethod
    def read(cls, path: Path) -> StateFile:
        with np.load(path, allow_pickle=False) as data:
            layout = data["layout"].tolist()
            if layout != [Col.SIZE, *BIN_OFFSETS, BINS_TOTAL]:
                raise ValueError(f"{path}: series states of another layout ({layout}); retrain the bundle")
            keys = [str(k) for k in data["keys"]]
            states = StateMatrices(data["scalars"], data["profiles"], data["scales"])
        n = len(keys)
        if states.scalars.shape != (n, Col.SIZE) or states.profiles.shape != (n, BINS_TOTAL) or \
                states.scales.shape != (n, BINS_TOTAL):  # fmt: skip
            raise ValueError(f"{path}: arrays of the wrong shape for {n} series")
        return cls(keys, states)
