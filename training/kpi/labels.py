"""Labelled anomalies as runs: what evaluate (point-adjusted F1) and nab (NAB's windows) both read."""

from __future__ import annotations

import numpy as np


def segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive 1s."""
    lab = np.concatenate([[0], np.asarray(labels, dtype=np.int8), [0]])
    edges = np.flatnonzero(np.diff(lab))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
