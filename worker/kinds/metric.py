"""Metric points: each goes into its series' window (worker/windows.py), and only a point that completes
a full window is scored; the others are held (warming, duplicate, late), counted by outcome. After
scoring, the detector decides on the whole batch in one vectorised call (`decide_windows`, the
points of one series in the order their windows were made). A batch's windows are scaled in one call
too (schemas/detect/: the same numbers as one at a time, for a fraction of the time per window).
Outputs are keyed by the series key and name the series, its labels, the point's value, the window and
the detector part that fired.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from schemas import MetricPoint, Reason, Rejection
from schemas.detect import PARTS, Decisions, PointInputs, WindowFeatures, decide_in_order, window_features
from schemas.manifest import MetricPreprocessing
from schemas.records import in_ts_range
from worker.batch import Item
from worker.decide import Verdicts, from_detector
from worker.evidence import evidence
from worker.kafka.protocol import Consumed
from worker.kinds.base import Held, RecordKind
from worker.metrics import Metrics
from worker.series_export import SeriesExport
from worker.serving.registry import LoadedModel
from worker.settings import WorkerSettings
from worker.windows import IntervalMismatch, PointOutcome, SeriesWindows, Window

log = logging.getLogger(__name__)

# Series named in interval warnings per model (its versions share the count): one line each, then one
# line that says the rest are not named, so a topic of thousands of mis-sampled series cannot flood the log.
MAX_INTERVAL_WARNINGS = 20


class MetricKind(RecordKind):
    name = "metric"
    row_dtype = np.float64  # raw values: the detector's arithmetic is float64
    rows_are_input = False  # the model gets features made from them

    def __init__(self, model: LoadedModel, settings: WorkerSettings) -> None:
        super().__init__(model, settings)
        prep = model.manifest.preprocessing
        self.windows = SeriesWindows(prep, settings.max_series, settings.max_series_bytes)
        self.windows.primed = model.primed
        self.max_key_bytes = settings.max_series_key_bytes
        self._reported: Counter[str] = Counter()  # the windows' running totals, as last reported
        self._evidence_failed = False
        self._interval_warned: set[str] = set()  # series named in an interval warning (bounded)
        self._interval_capped = False  # whether the line for the series past the cap was said
        self.export = SeriesExport(settings.export_series, settings.export_series_max, model.manifest.name)

    def prepare(self, message: Consumed, point: MetricPoint, record_id: str) -> Item | Held | Rejection:
        key = point.series_key
        if len(key) > self.max_key_bytes // 4 and len(key.encode()) > self.max_key_bytes:
            # Every output repeats the key, and the series' state holds it: a budget, not a count.
            size = len(key.encode())
            return Rejection(Reason.TOO_LARGE, f"the series key (name and labels) is {size:,} bytes, over "
                             f"the {self.max_key_bytes:,}-byte limit (--max-series-key-bytes)")  # fmt: skip
        ts = point.ts.timestamp() if point.ts is not None else None  # records carry ts in UTC
        kafka_ts = message.timestamp / 1000.0 if message.timestamp else None
        if kafka_ts is not None and not in_ts_range(kafka_ts):
            kafka_ts = None  # a producer's clock far off: start the grid as if there were none
        window = self.windows.push(key, ts, point.value, (message.topic, message.partition), kafka_ts)
        if isinstance(window, PointOutcome):
            return Held(self.model, window)
        return Item(message=message, record=point, record_id=record_id, row=window.raw, context=window)

    def model_inputs(self, rows: np.ndarray) -> tuple[np.ndarray, WindowFeatures]:
        features = window_features(rows, self.model.manifest.preprocessing.clip)
        return features.z, features

    def decide(
        self, items: list[Item], scores: np.ndarray, prepared: object, explaining: np.ndarray | None = None
    ) -> Verdicts:
        assert isinstance(prepared, WindowFeatures)
        # In the order the windows were made: each decision updates its series' state.
        decisions = decide_windows(self.windows, [window_of(item) for item in items], scores, prepared)
        if self.export:
            self.export.record([item.record.series_key for item in items], prepared.last, decisions)
        verdicts = from_detector(self.model.manifest, decisions)
        if explaining is not None and explaining.shape == (len(items),):
            verdicts = replace(verdicts, reconstructed=reconstructed_values(prepared, explaining))
        return verdicts

    def output_key(self, item: Item) -> str:
        return item.record.series_key

    def output_fields(self, item: Item, verdicts: Verdicts, i: int) -> dict[str, object]:
        point, d = item.record, verdicts.decisions[i]
        fields: dict[str, object] = dict(
            series_key=point.series_key, value=point.value, series=point.series, labels=point.labels,
            window=len(item.row), detector=d.part, detector_score=d.part_score,
            detector_threshold=d.part_threshold, expected=d.expected, lower=d.lower, upper=d.upper,
        )  # fmt: skip
        if verdicts.reconstructed is not None and np.isfinite(rebuilt := verdicts.reconstructed[i]):
            fields["reconstructed"] = float(rebuilt)
        if point.ts is None:  # the alert names the point's grid time
            fields["ts"] = datetime.fromtimestamp(window_of(item).slot_ts, UTC)
        return fields

    def alert_fields(
        self, item: Item, verdicts: Verdicts, i: int, explained: dict[int, dict[str, object]] | None
    ) -> dict[str, object]:
        assert verdicts.decisions is not None
        window = window_of(item)
        try:
            return {"evidence": evidence(verdicts.decisions[i], item.record.value, len(window.raw),
                                         window.interval_s)}  # fmt: skip
        except (ValueError, TypeError, OverflowError) as exc:  # the alert goes out without it, never lost
            if not self._evidence_failed:
                log.warning("%s: an alert goes out without its evidence: %s", self.model.key, exc)
                self._evidence_failed = True
            return {}

    def carry_over(self, previous: RecordKind) -> str | None:
        """The series' windows and detector state go on with the new version when its windows are
        made the same way (window_differences); its detector parameters apply from the next point,
        and the state's score statistics keep adapting as they always do."""
        assert isinstance(previous, MetricKind)
        self.export = previous.export  # the series chosen stay chosen (a series not held leaves)
        self.export.model_name = self.model.manifest.name
        why = window_differences(previous.model.manifest.preprocessing, self.model.manifest.preprocessing)
        if why:
            return why
        self.windows = previous.windows
        self.windows.prep = self.model.manifest.preprocessing  # new series start from its priors
        self.windows.primed = self.model.primed  # or from its primed states
        self._reported = previous._reported  # the totals so far were reported under the old key
        # The same grid: a series said once is said.
        self._interval_warned, self._interval_capped = previous._interval_warned, previous._interval_capped
        return None

    def keep_partitions(self, kept: set[tuple[str, int]]) -> None:
        # Series of partitions that moved away are another worker's now; those kept go on where
        # they were (the revocation committed exactly up to them).
        self.windows.drop_partitions(kept)

    def after_publish(self, metrics: Metrics) -> None:
        if self.export:  # the exported series' last points, as soon as they are decided
            self.export.report(metrics, self.windows)

    def report(self, metrics: Metrics) -> None:
        """The windows' running totals into the Prometheus metrics: what changed since the last report."""
        key, store = self.model.key, self.windows
        self.warn_intervals()
        # Made at 0 before the first eviction or reset: a dashboard shows 0, not "no data", and an
        # increase() sees the first one.
        metrics.series_evicted.labels(model=key)
        metrics.series_resets.labels(model=key)
        metrics.series_active.labels(model=key).set(len(store))
        metrics.series_warming.labels(model=key).set(store.warming)
        self.after_publish(metrics)
        now = Counter({o.value: n for o, n in store.outcomes.items()})
        now.update(evicted=store.evicted, resets=store.resets)
        before, self._reported = self._reported, now
        for name, total in now.items():
            delta = total - before[name]
            if not delta:
                continue
            if name == "evicted":
                metrics.series_evicted.labels(model=key).inc(delta)
            elif name == "resets":
                metrics.series_resets.labels(model=key).inc(delta)
            else:
                metrics.metric_points.labels(model=key, outcome=name).inc(delta)

    def warn_intervals(self) -> None:
        """Log the series the windows found at another interval than their grid's: each named once,
        at most MAX_INTERVAL_WARNINGS of them, then one line for the rest."""
        found, self.windows.interval_mismatches = self.windows.interval_mismatches, []
        reset_gap = self.model.manifest.preprocessing.reset_gap
        for m in found:
            if m.key in self._interval_warned:
                continue
            if len(self._interval_warned) >= MAX_INTERVAL_WARNINGS:
                self._say_interval_cap()
                return
            self._interval_warned.add(m.key)
            log.warning("%s: %s", self.model.key, interval_warning(m, reset_gap))

    def _say_interval_cap(self) -> None:
        if self._interval_capped:
            return
        self._interval_capped = True
        log.warning("%s: more series arrive at another interval than the model's grid; they are not "
                    "named (the first %d are above)", self.model.key, MAX_INTERVAL_WARNINGS)  # fmt: skip


def interval_warning(m: IntervalMismatch, reset_gap: int) -> str:
    """What a series at another interval than its grid's does to its windows, and what to do."""
    ratio = m.observed_s / m.grid_s
    if ratio - 1 >= reset_gap:  # every gap restarts the window (worker/windows.py)
        effect = (f"gaps of {ratio - 1:.2g} slots (reset_gap {reset_gap} or more) restart its window at "
                  "every point, so none is scored")  # fmt: skip
    elif ratio > 1:
        effect = (f"about {ratio - 1:.2g} of every {ratio:.2g} slots are filled by interpolation, so each "
                  f"window holds about 1/{ratio:.2g} of the real points the model learnt from")  # fmt: skip
    else:
        effect = (f"about {1 / ratio - 1:.2g} of every {1 / ratio:.2g} points are dropped as duplicates of "
                  "their slot")  # fmt: skip
    return (f"series {m.key!r}: points arrive every {m.observed_s:g} s (median gap of its first points), "
            f"but the model's grid for it is {m.grid_s:g} s: {effect}, so expect false or missed alerts. "
            f"Train a model on data at {m.observed_s:g} s (python -m training train --dataset csv --data "
            "<a CSV of these series>) and serve that one for these series")  # fmt: skip


# Every other preprocessing field makes a window mean something else; a field added later counts
# too. The per-series priors and the detector's parameters may change (the grid is checked below).
CARRIED_OVER_ANYWAY = {"type", "series", "detector", "state_file"}


def window_differences(old: MetricPreprocessing, new: MetricPreprocessing) -> str | None:
    """What makes a series' window under `old` mean something else under `new`, in words, or None:
    the window length, the grid (a series' interval, the fill, reset_gap) and the scaling."""
    changed = [
        f"{field} {getattr(old, field)} -> {getattr(new, field)}"
        for field in MetricPreprocessing.model_fields  # in the manifest's order
        if field not in CARRIED_OVER_ANYWAY and getattr(old, field) != getattr(new, field)
    ]
    grids = sorted(
        key for key in old.series.keys() | new.series.keys()
        if (old.series[key].interval_s if key in old.series else old.interval_s)
        != (new.series[key].interval_s if key in new.series else new.interval_s)
    )  # fmt: skip
    if grids:
        changed.append(f"the grid interval of {len(grids)} series (e.g. {grids[0]})")
    return "; ".join(changed) or None


def window_of(item: Item) -> Window:
    assert isinstance(item.context, Window)
    return item.context


def reconstructed_values(features: WindowFeatures, rebuilt: np.ndarray) -> np.ndarray:
    """The graph's reconstruction of each window's last point, back in the series' units: the model
    sees the window scaled by its own past (schemas.detect.window_features), so the value is
    centre + scale x the rebuilt scaled value. NaN where that is not finite."""
    with np.errstate(all="ignore"):  # a scale near float64's largest overflows: NaN, left out
        values = features.center + features.scale * rebuilt.astype(np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def decide_windows(store: SeriesWindows, windows: list[Window], scores: np.ndarray,
                   features: WindowFeatures) -> Decisions:  # fmt: skip
    """The detector's decisions on a batch of windows (in the order they were made) from the model's
    scores and the batch's features; each live series' state (its row in `store.states`) is updated."""
    slot_ts = np.fromiter((w.slot_ts for w in windows), np.float64, len(windows))
    inputs = PointInputs.of(features, scores, slot_ts)
    rows = np.fromiter((w.row for w in windows), np.intp, len(windows))
    params = store.prep.detector
    live = store.live(windows)
    if live.all():
        return decide_in_order(store.states, rows, inputs, params)
    at = np.flatnonzero(live)
    kept = PointInputs(*(getattr(inputs, f)[at] for f in PointInputs.__slots__))
    made = decide_in_order(store.states, rows[at], kept, params)
    gone = np.flatnonzero(~live)  # evicted meanwhile: their state is gone, so they only warm
    n = len(gone)
    warming = Decisions(
        np.zeros(n), np.full(n, params.threshold), np.full(n, PARTS.index("vae"), np.int8),
        np.zeros(n), np.full(n, np.inf), np.zeros(n, bool), np.ones(n, bool), *np.full((7, n), np.nan),
    )  # fmt: skip
    return Decisions.concat([made, warming], np.concatenate([at, gone]))
