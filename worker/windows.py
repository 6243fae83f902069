"""The metric windows: per-series sliding windows for metric points (the grid, gaps, late and duplicate
points, eviction), which the metric kind (worker/kinds/metric.py) pushes each point into.

One `SeriesWindows` per metric model. Each series keeps its last W raw values in a row of
one preallocated float64 matrix (a ring), so memory is W * 8 bytes plus a small state
object per series, and at most `max_series` series are held: the one updated longest ago
is evicted to make room (it warms up again if it comes back).

What a point does (same rules as schemas/timeseries.py applies to a CSV in training):
- on the grid slot after the series' last one, or later: the gap (if any) is filled
  linearly; a gap of `reset_gap` slots or more restarts the window instead. Once the
  series holds W points, the window ending at this point is returned for scoring.
- in the slot of the series' last point: a duplicate (at-least-once redelivery, or a
  producer retry); it is not scored again.
- in an earlier slot: late; the windows it belonged to are already scored, so it is not.
  Unless it lies more than `reset_gap` slots before the last point: then a clock went back (or
  the last point was stamped in the future), and the window restarts from this point, so
  one wrong timestamp cannot leave a series rejecting every correct point after it.
- without a timestamp: it takes the slot after the series' last point (a new series starts
  at the slot of `fallback_ts`, the message's Kafka timestamp).

A series' first INTERVAL_GAPS gaps between timestamps are checked against its grid interval: a
median gap 1.5 times the grid interval or more (or 1.5 times less) means its points are put on a
grid of another interval than they come at (a 5-minute series on a 1-minute model's grid: four
of five slots interpolated, each window holding a fifth of the real points the model learnt
from). Such a series is recorded once in `interval_mismatches`, which the metric kind logs, then
never checked again.

Each full window is scaled by its own past (schemas/detect/), so nothing about a series is
fixed at training time but its grid interval. Beside the ring row, each series keeps its
detector state in the same row of the detector's state matrices (schemas/detect/state.py: 38
floats and its seasonal profiles, 5.3 KB), which the metric kind's decision updates, a batch at a
time, once the model has scored the windows. Windows only here; the decision is the kind's.

State lives in memory only. A series the bundle's training saw starts from its primed detector
state (the bundle's series_state.npz); others from the priors. After a restart, or when a
partition moves to another worker, each series' window fills again: its first W - 1 points are
counted as `warming` and not scored (and a series without a primed state only learns from its
first `warmup` scores). A window in flight whose series is evicted before its decision gets a
warming decision (no alert), since its state is gone.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from dataclasses import dataclass

import numpy as np

from schemas.detect import StateFile, StateMatrices, bytes_per_row
from schemas.manifest import MetricPreprocessing
from schemas.timeseries import interpolate_gap, off_grid, slot_of

# Gaps judged per series: enough that a median shrugs off jitter and a few missing or late points
# (up to 7 of 16 gaps may be off), few enough that the list is gone after a series' first points.
INTERVAL_GAPS = 16
# Mismatches held until the metric kind logs them (once per poll): a bound for a store nobody drains.
MAX_PENDING_MISMATCHES = 100


class PointOutcome(enum.StrEnum):
    SCORED = "scored"
    WARMING = "warming"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(slots=True)
class _Series:
    row: int  # of the ring matrix and of the detector's state matrices
    last_slot: int
    filled: int  # points in the ring since the last reset (capped at W)
    head: int  # ring position the next point goes to
    interval_s: float
    partition: tuple[str, int]
    last_ts: float | None = None  # the last point's own timestamp, while its gaps are judged
    gaps: list[float] | None = None  # seconds between its first timestamps; None once judged


@dataclass(frozen=True, slots=True)
class IntervalMismatch:
    """A series whose points come at another interval than its grid's (see the module's docstring)."""

    key: str
    observed_s: float  # the median of its first INTERVAL_GAPS gaps
    grid_s: float  # its grid interval: the bundle's for the series, or the bundle's grid's


def interval_mismatch(gaps: list[float], grid_s: float) -> float | None:
    """The median of `gaps` (seconds) where it is clearly another interval than `grid_s`, else None."""
    observed = float(np.median(gaps))
    return observed if off_grid(observed, grid_s) else None


@dataclass(frozen=True, slots=True)
class Window:
    """A full window, and what deciding on its score needs. Its model input is
    window_features(raw).z, made for a whole batch at once (worker/kinds/metric.py)."""

    raw: np.ndarray  # float64 [W]: the series' own values, oldest first
    slot_ts: float  # grid time of the last point, seconds since the epoch
    row: int  # the series' row of the detector's state
    generation: int  # of that row when the window was made: it changes if the series is evicted
    interval_s: float  # the series' grid interval


class SeriesWindows:
    def __init__(self, prep: MetricPreprocessing, max_series: int, max_bytes: int | None = None) -> None:
        self.prep = prep
        self.window = prep.window
        self.max_series = max_series
        self.max_bytes = max_bytes  # of series state: keys, ring rows, detector state
        self.bytes = 0
        self._series: OrderedDict[str, _Series] = OrderedDict()
        self._values = np.zeros((min(max_series, 1024), self.window), dtype=np.float64)
        self.states = StateMatrices.empty(self._values.shape[0])
        self._generation = np.zeros(self._values.shape[0], dtype=np.int64)
        self.primed: StateFile | None = None  # the bundle's primed states (set by the metric kind)
        self._free: list[int] = list(range(self._values.shape[0] - 1, -1, -1))
        # Running totals, read into the Prometheus metrics once per poll (not once per point).
        self.outcomes: Counter[PointOutcome] = Counter()
        self.evicted = 0
        self.resets = 0
        self.warming = 0  # series holding fewer than W points
        self.interval_mismatches: list[IntervalMismatch] = []  # for the metric kind to log, then clear
        self.interval_mismatched = 0  # series found at another interval than their grid's, in all

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key: str) -> bool:
        return key in self._series

    def push(
        self,
        key: str,
        ts_s: float | None,
        value: float,
        partition: tuple[str, int],
        fallback_ts: float | None = None,
    ) -> Window | PointOutcome:
        """Place a point; returns the window it completes, or why it completes none (see above)."""
        out = self._place(key, ts_s, value, partition, fallback_ts)
        self.outcomes[PointOutcome.SCORED if isinstance(out, Window) else out] += 1
        return out

    def _place(
        self,
        key: str,
        ts_s: float | None,
        value: float,
        partition: tuple[str, int],
        fallback_ts: float | None = None,
    ) -> Window | PointOutcome:
        s = self._series.get(key)
        if s is None:
            s = self._new(key, ts_s if ts_s is not None else fallback_ts, partition)
            s.last_ts = ts_s  # its own, not the fallback: the gaps judged are between its timestamps
            self._append(s, value)
            return self._complete(s)
        self._series.move_to_end(key)
        s.partition = partition
        if s.gaps is not None and ts_s is not None:  # before the duplicate test: finer points are
            self._observe_gap(key, s, ts_s)  # duplicates of their slot, and their gaps count too
        slot = s.last_slot + 1 if ts_s is None else slot_of(ts_s, s.interval_s)
        if slot == s.last_slot:
            return PointOutcome.DUPLICATE
        if slot < s.last_slot - self.prep.reset_gap:
            self._reset(s)  # the clock went back: start over from this point
            s.last_slot = slot
            self._append(s, value)
            return self._complete(s)
        if slot < s.last_slot:
            return PointOutcome.LATE
        gap = slot - s.last_slot - 1
        if gap >= self.prep.reset_gap:
            self._reset(s)
        elif gap:
            before = self._values[s.row, (s.head - 1) % self.window]
            for filled in interpolate_gap(before, value, gap):
                self._append(s, filled)
        s.last_slot = slot
        self._append(s, value)
        return self._complete(s)

    def drop_partitions(self, keep: set[tuple[str, int]]) -> int:
        """Forget the series of partitions no longer assigned here; returns how many."""
        gone = [k for k, s in self._series.items() if s.partition not in keep]
        for key in gone:
            self._forget(key)
        return len(gone)

    @property
    def capacity(self) -> int:
        """Series the ring matrix has rows for now: it grows by doubling, never past max_series."""
        return self._values.shape[0]

    def bytes_per_series(self) -> int:
        """Window and detector storage per series (ring row and state row); objects come on top."""
        return self.window * self._values.itemsize + bytes_per_row()

    def live(self, windows: list[Window]) -> np.ndarray:
        """Which of these windows' series are still held (not evicted since the window was made), as
        a boolean mask: only theirs may be decided on, as a row's state now belongs to its series."""
        rows = np.fromiter((w.row for w in windows), np.intp, len(windows))
        generations = np.fromiter((w.generation for w in windows), np.int64, len(windows))
        return self._generation[rows] == generations

    # -- internals ---------------------------------------------------------------------------

    def _new(self, key: str, ts_s: float | None, partition: tuple[str, int]) -> _Series:
        size = self._size(key)
        while self._series and (len(self._series) >= self.max_series or self._over_budget(size)):
            oldest = next(iter(self._series))
            self._forget(oldest)
            self.evicted += 1
        self.bytes += size
        known = self.prep.series.get(key)
        interval = known.interval_s if known else self.prep.interval_s
        slot = 0 if ts_s is None else slot_of(ts_s, interval)
        row = self._row()
        s = _Series(row=row, last_slot=slot, filled=0, head=0, interval_s=interval, partition=partition,
                    gaps=[])  # fmt: skip
        primed = self.primed.index.get(key) if self.primed is not None else None
        if primed is not None and self.primed.interval(key) == interval:
            self.states.start(s.row, self.prep.detector, interval, self.primed.states, primed)
        else:
            self.states.start(s.row, self.prep.detector, interval)
        self._series[key] = s
        self.warming += 1
        return s

    def _observe_gap(self, key: str, s: _Series, ts_s: float) -> None:
        """Note the gap since the series' last timestamp; after INTERVAL_GAPS of them, judge once."""
        if s.last_ts is not None and ts_s > s.last_ts:  # a redelivery (0) or a late point is no gap
            s.gaps.append(ts_s - s.last_ts)
        s.last_ts = ts_s if s.last_ts is None else max(s.last_ts, ts_s)  # from the latest, not a late one
        if len(s.gaps) < INTERVAL_GAPS:
            return
        observed = interval_mismatch(s.gaps, s.interval_s)
        s.gaps = s.last_ts = None  # judged: nothing more per point for this series
        if observed is None:
            return
        self.interval_mismatched += 1
        if len(self.interval_mismatches) < MAX_PENDING_MISMATCHES:
            self.interval_mismatches.append(IntervalMismatch(key, observed, s.interval_s))

    def _append(self, s: _Series, value: float) -> None:
        self._values[s.row, s.head] = value
        s.head = (s.head + 1) % self.window
        if s.filled < self.window:
            s.filled += 1
            if s.filled == self.window:
                self.warming -= 1

    def _reset(self, s: _Series) -> None:
        if s.filled >= self.window:
            self.warming += 1
        s.filled = 0
        s.head = 0
        self.resets += 1

    def _complete(self, s: _Series) -> Window | PointOutcome:
        if s.filled < self.window:
            return PointOutcome.WARMING
        ring = self._values[s.row]
        raw = np.concatenate((ring[s.head :], ring[: s.head]))  # oldest first (half the time of a gather)
        return Window(raw, s.last_slot * s.interval_s, s.row, int(self._generation[s.row]), s.interval_s)

    def _size(self, key: str) -> int:
        return self.bytes_per_series() + len(key)  # the key's characters: bytes for the usual ASCII

    def _over_budget(self, more: int) -> bool:
        return self.max_bytes is not None and self.bytes + more > self.max_bytes

    def _forget(self, key: str) -> None:
        self.bytes -= self._size(key)
        s = self._series.pop(key)
        if s.filled < self.window:
            self.warming -= 1
        self._generation[s.row] += 1  # a window of it still in flight must not touch the row's next series
        self._free.append(s.row)

    def _row(self) -> int:
        if not self._free:
            old = self._values.shape[0]
            new = min(self.max_series, old * 2)
            self._values = np.concatenate([self._values, np.zeros((new - old, self.window))])
            self.states = self.states.grown(new)
            self._generation = np.concatenate([self._generation, np.zeros(new - old, dtype=np.int64)])
            self._free = list(range(new - 1, old - 1, -1))
        return self._free.pop()
