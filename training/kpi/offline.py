"""Which points the worker alerts on, computed offline from a bundle and a CSV (no torch).

The worker's own code path: each series on its grid (its interval from the manifest, else
the model-wide one; the manifest's reset_gap), each window that ends in a real point with W
points of its segment behind it scaled by its own past (schemas.detect.window_features), the
graph's score from plain onnxruntime, then schemas.detect's decisions point by point from the
series' primed state (a series training saw) or a new series' state, as the worker does from its
first point. An alert names the real point that ends the window. For tests of the worker, and for
scoring a whole series as a stream would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from schemas import MetricPreprocessing, ModelManifest
from schemas.detect import StateFile, replay, window_features
from schemas.timeseries import scoreable, to_grid, windows_ending_at
from training.core.bundle import read_manifest
from training.core.onnx_scoring import cpu_session, onnx_scores
from training.kpi.load import load_csv
from training.kpi.scoring import SCORE_BATCH, RawScores, Scored
from training.kpi.windows import first_slot_positions


class ExpectedAlert(NamedTuple):
    series: str  # the series key as in the CSV
    timestamp_s: float  # the real point that ends the window, as in the CSV
    score: float
    threshold: float


log = logging.getLogger(__name__)
_PRIMED: dict[tuple[str, str], StateFile] = {}  # by (bundle folder, version): read once per process
_WARNED: set[tuple[str, str]] = set()  # bundles whose states were not found: said once


def primed_states(manifest: ModelManifest, session, folder: Path | None = None) -> StateFile | None:
    """The bundle's primed series states (None for a bundle without them), read from `folder`, or
    else from the folder the session's graph was loaded from (onnxruntime keeps the path it was
    given). A bundle that names a state file that cannot be found is scored from the priors, with a
    warning: pass the bundle's folder."""
    pre = manifest.preprocessing
    if not isinstance(pre, MetricPreprocessing) or not pre.state_file:
        return None
    if folder is None:
        model_path = getattr(session, "_model_path", None)
        folder = Path(model_path).resolve().parent if model_path else None
    if folder is None or not (folder / pre.state_file).exists():
        if (manifest.name, manifest.version) in _WARNED:
            return None
        _WARNED.add((manifest.name, manifest.version))
        log.warning("%s %s: its primed series states (%s) were not found beside the session's model; "
                    "known series are scored from the priors", manifest.name, manifest.version,
                    pre.state_file)  # fmt: skip
        return None
    key = (str(folder.resolve()), manifest.version)
    if key not in _PRIMED:
        _PRIMED[key] = StateFile.read(Path(folder) / pre.state_file)
    return _PRIMED[key]


def series_detection(
    manifest: ModelManifest, session, key: str, timestamps_s: np.ndarray, values: np.ndarray,
    primed: StateFile | None = None, folder: Path | None = None,
) -> tuple[np.ndarray, Scored]:  # fmt: skip
    """(timestamps of the scored points, the detector's Scored) for one series, as the worker scores it:
    from its primed state when `primed` (default: the bundle's, from `folder` or found through
    `session`) holds it."""
    pre = manifest.preprocessing
    if not isinstance(pre, MetricPreprocessing):
        raise ValueError(f"bundle {manifest.name} {manifest.version} is not a metric model")
    stats = pre.series.get(key)
    interval = stats.interval_s if stats else pre.interval_s
    grid = to_grid(timestamps_s, values, interval, pre.reset_gap)
    ends = scoreable(grid, pre.window)
    f = window_features(windows_ending_at(grid.values, ends, pre.window), pre.clip)
    raw = RawScores(
        ends, f, onnx_scores(session, f.z, SCORE_BATCH), grid.slots[ends].astype(np.float64) * interval
    )
    primed = primed if primed is not None else primed_states(manifest, session, folder)
    [d], _ = replay([raw.points(key, interval)], pre.detector, primed)
    scored = Scored(ends, d.score, d.threshold, d.part, raw.model, d.alert)
    pos, rows = first_slot_positions(timestamps_s, interval, grid)
    times = np.empty(len(grid))
    times[pos] = timestamps_s[rows]
    return times[ends], scored


def series_scores(
    manifest: ModelManifest, session, key: str, timestamps_s: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps of the scored points, their scores, the threshold each had to reach) for one series.

    scores / thresholds >= 1 is an alert: comparable across series, what a benchmark's own
    threshold sweep should be given."""
    times, scored = series_detection(manifest, session, key, timestamps_s, values)
    return times, scored.scores, scored.thresholds


def predict_alerts(bundle_folder: Path, csv_path: Path) -> list[ExpectedAlert]:
    """Every point of every series in the CSV the worker alerts on, in file order of series and time
    order within one."""
    manifest = read_manifest(Path(bundle_folder))
    session = cpu_session(Path(bundle_folder) / manifest.model_file)
    out = []
    for key, raw in load_csv(Path(csv_path)).series.items():
        times, scored = series_detection(manifest, session, key, raw.timestamps, raw.values,
                                         folder=Path(bundle_folder))  # fmt: skip
        scores, thresholds, hit = scored.scores, scored.thresholds, scored.alerts
        out += [
            ExpectedAlert(key, float(t), float(s), float(thr))
            for t, s, thr in zip(times[hit], scores[hit], thresholds[hit], strict=True)
        ]
    return out
