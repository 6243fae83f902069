"""Which points the worker should alert on, computed offline from a bundle and a CSV (no torch).

For tests of the worker: feed the CSV's points through Kafka, and compare its alerts with
`predict_alerts`. Worker semantics, from `schemas.timeseries`: each series on its grid
(its own interval from the manifest, else the model-wide one; the manifest's reset_gap),
normalised by its manifest stats (a series training did not see: by the robust stats of
the first window it fills, as the worker does), and a window scored when its last point is a real one with W
points of its segment behind it. An alert names the real point that ends the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from schemas import MetricPreprocessing, ModelManifest
from schemas.timeseries import Grid, normalise, robust_stats, scoreable, to_grid, windows_ending_at
from training.bundle import read_manifest
from training.kpi.load import load_csv
from training.kpi.scoring import onnx_scores
from training.kpi.windows import first_slot_positions
from training.onnx_scoring import cpu_session


class ExpectedAlert(NamedTuple):
    series: str  # the series key as in the CSV
    timestamp_s: float  # the real point that ends the window, as in the CSV
    score: float
    threshold: float


def series_scores(
    manifest: ModelManifest, session, key: str, timestamps_s: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(timestamps of the scored points, their scores, the series' threshold) for one series."""
    pre = manifest.preprocessing
    if not isinstance(pre, MetricPreprocessing):
        raise ValueError(f"bundle {manifest.name} {manifest.version} is not a metric model")
    stats = pre.series.get(key)
    interval = stats.interval_s if stats else pre.interval_s
    grid = to_grid(timestamps_s, values, interval, pre.reset_gap)
    threshold = stats.threshold if stats is not None and stats.threshold is not None else manifest.threshold
    ends = scoreable(grid, pre.window)
    if stats is not None:
        center, scale = stats.center, stats.scale
    else:  # pre.unknown_series == "first_window"
        center, scale = first_window_stats(grid, pre.window)
    z = normalise(grid.values, center, scale, pre.clip)
    scores = onnx_scores(session, windows_ending_at(z, ends, pre.window))
    pos, rows = first_slot_positions(timestamps_s, interval, grid)
    times = np.empty(len(grid))
    times[pos] = timestamps_s[rows]
    return times[ends], scores, float(threshold)


def first_window_stats(grid: Grid, window: int) -> tuple[float, float]:
    """Robust stats of the first window the worker fills (a segment cut by a long gap fills none)."""
    ends = scoreable(grid, window)
    if not len(ends):
        return 0.0, 1.0  # nothing of this series is scored
    return robust_stats(grid.values[ends[0] - window + 1 : ends[0] + 1])


def predict_alerts(bundle_folder: Path, csv_path: Path) -> list[ExpectedAlert]:
    """Every point of every series in the CSV whose window scores >= its series' threshold, in file order
    of series and time order within one."""
    manifest = read_manifest(Path(bundle_folder))
    session = cpu_session(Path(bundle_folder) / manifest.model_file)
    out = []
    for key, raw in load_csv(Path(csv_path)).series.items():
        times, scores, threshold = series_scores(manifest, session, key, raw.timestamps, raw.values)
        hit = scores >= threshold
        out += [
            ExpectedAlert(key, float(t), float(s), threshold)
            for t, s in zip(times[hit], scores[hit], strict=True)
        ]
    return out
