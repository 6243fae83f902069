"""Whole series through the detector, as a stream would bring their points: training's evaluation, its
priming of series states, and the offline prediction of what the worker alerts on.

Series are independent, so their points are decided in lockstep: the i-th scored point of every
series in one call (decide() is elementwise per row, so this gives exactly what one series alone,
point after point, gives).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.detect.decide import Decisions, PointInputs, decide
from schemas.detect.params import DetectorParams
from schemas.detect.state import StateFile, StateMatrices


@dataclass(frozen=True)
class SeriesPoints:
    """A series' scored points, in time order: its key, grid interval and each point's inputs."""

    key: str
    interval_s: float
    inputs: PointInputs

    def __len__(self) -> int:
        return len(self.inputs.vae)


def replay(
    series: Sequence[SeriesPoints], params: DetectorParams, primed: StateFile | None = None
) -> tuple[list[Decisions], StateMatrices]:
    """The decisions of every point of every series, and the series' states after their last point.
    A series the primed states hold starts from its own (as the worker starts it), others from the
    priors."""
    states = StateMatrices.empty(len(series))
    for i, s in enumerate(series):
        j = primed.index.get(s.key) if primed is not None else None
        states.start(i, params, s.interval_s, primed.states if j is not None else None, j or 0)
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    longest = int(lengths.max()) if len(lengths) else 0
    # Inputs and outputs as [series, point] matrices, so each step is a column.
    fields = {f: np.zeros((len(series), longest), dtype=bool if f == "flat" else np.float64)
              for f in PointInputs.__slots__}  # fmt: skip
    for r, s in enumerate(series):
        for f, m in fields.items():
            m[r, : len(s)] = getattr(s.inputs, f)
    out = {name: np.zeros((len(series), longest), dtype=dtype) for name, dtype in _DTYPES.items()}
    for i in range(longest):
        rows = np.flatnonzero(lengths > i)
        d = decide(states, rows, PointInputs(*(fields[f][rows, i] for f in PointInputs.__slots__)), params)
        for name in _DTYPES:
            out[name][rows, i] = getattr(d, name)
    decisions = [
        Decisions(**{name: out[name][r, : lengths[r]] for name in _DTYPES}) for r in range(len(series))
    ]
    return decisions, states


_DTYPES = {
    "score": np.float64, "threshold": np.float64, "part": np.int8, "part_score": np.float64,
    "part_threshold": np.float64, "alert": bool, "warming": bool, "expected": np.float64,
    "lower": np.float64, "upper": np.float64, "reference": np.float64, "unit": np.float64,
    "period_s": np.float64, "longest_run": np.float64,
}  # fmt: skip
