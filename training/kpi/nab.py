"""Numenta Anomaly Benchmark (NAB) scoring: windows, scaled-sigmoid rewards, threshold sweep, score.

Follows the reference scorer of numenta/NAB (nab/sweeper.py, nab/labeler.py, nab/runner.py,
nab/util.py), described in Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms -
the Numenta Anomaly Benchmark" (2015). Where the code and the paper differ, the code wins:

- Windows: each labelled anomaly point gets a window of int(0.10 * n / k) points (k anomalies in
  a series of n) centred on it, clipped to the series; windows that start inside the probationary
  period are dropped and overlapping windows are merged. Window limits here are inclusive
  (start, end) indices, as NAB's are.
- Probationary period: the first min(floor(0.15 * n), 0.15 * 5000) points are not scored at all
  (neither detections nor windows lying wholly inside it).
- A detection inside a window at index i earns A_TP * S(-(end - i + 1) / W) / S(-1), W the window's
  length and S(y) = 2 sigmoid(-5 y) - 1 (S = -1 for y > 3): A_TP exactly at the window's first
  point, about 0 at its last. Only the earliest detection in a window counts; a window with none
  costs A_FN.
- A detection outside every window costs |A_FP| * S((i - end) / (W - 1)) measured from the end of
  the closest preceding window (tiny right after it, the full A_FP from 3 (W - 1) points on), and
  the full A_FP when no window precedes it.
- Corpus: the raw score is summed over series; the threshold (detection = score >= threshold) is
  the single one over the whole corpus that maximises it, and the reported score is
  100 * (S - S_null) / (S_perfect - S_null).

The sweep is exact: every distinct anomaly score is a candidate threshold, evaluated in one sort
and a few cumulative sums (nab_score on 60 series x 20k points: under a second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from training.kpi.labels import segments

Window = tuple[int, int]  # inclusive (start, end) point indices, as NAB's window limits

WINDOW_FRACTION = 0.10  # all of a series' windows together cover 10% of it (labeler windowSize)
PROBATION_PERCENT = 0.15  # NAB's probationPercent
_PROBATION_CAP_ROWS = 5000  # the probationary period is at most PROBATION_PERCENT of 5000 rows


@dataclass(frozen=True)
class Profile:
    """NAB's application profile weights, with the paper's signs (the code's cost matrix keeps
    magnitudes: fpWeight 0.11 stands for A_FP = -0.11). A_TN is listed for completeness: NAB's
    score never uses it."""

    a_tp: float
    a_fp: float
    a_fn: float
    a_tn: float = 1.0

    def __post_init__(self) -> None:
        # The sweep relies on TPs being rewards and FPs/FNs costs: then the earliest detection
        # in a window is always its best one and beats a miss.
        if not (self.a_tp > 0 and self.a_fp <= 0 and self.a_fn <= 0):
            raise ValueError(f"need a_tp > 0, a_fp <= 0, a_fn <= 0, got {self}")


PROFILES: dict[str, Profile] = {
    "standard": Profile(a_tp=1.0, a_fp=-0.11, a_fn=-1.0),
    "reward_low_FP_rate": Profile(a_tp=1.0, a_fp=-0.22, a_fn=-1.0),
    "reward_low_FN_rate": Profile(a_tp=1.0, a_fp=-0.11, a_fn=-2.0),
}


@dataclass
class SeriesScore:
    """One series scored for fixed detections. Counts are NAB's: points, not windows."""

    score: float
    tp: int  # detected points inside windows (after probation)
    fp: int  # detected points outside windows
    fn: int  # undetected points inside windows
    tn: int  # undetected points outside windows
    windows: int  # windows with at least one scorable point
    windows_detected: int


@dataclass
class Sweep:
    """The corpus raw score at every candidate threshold, highest threshold first.

    thresholds[0] is +inf (nothing detected); thresholds[j] for j > 0 are the distinct anomaly
    scores of the scorable points, descending. Counts are NAB's point counts at each threshold.
    """

    thresholds: np.ndarray
    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    windows_detected: np.ndarray
    windows: int

    def best(self) -> int:
        """Index of the best threshold; ties go to the highest threshold, as NAB's stable sort does."""
        return int(np.argmax(self.scores))


@dataclass
class NabResult:
    profile: str
    threshold: float
    score: float  # normalised: 100 perfect, 0 the null detector
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int
    per_series: list[float] = field(default_factory=list)  # raw score of each series at the threshold

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """Points at the start of a series of n that NAB does not score.

    NAB compares the row index with min(floor(p * n), p * 5000), a float; the ceiling turns that
    into the first scored index.
    """
    return math.ceil(min(math.floor(percent * n), percent * _PROBATION_CAP_ROWS))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's S(y) = 2 sigmoid(-5 y) - 1: 0.9866 at y = -1, 0 at y = 0, -1 beyond y = 3."""
    y = np.asarray(y, dtype=np.float64)
    # exp(5 y) cannot overflow where it is used: y > 3 is replaced by -1.
    s = 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0
    return np.where(y > 3.0, -1.0, s)


def _merge(windows: list[Window]) -> list[Window]:
    # NAB merges a window into the previous one when it starts at or before that one's end. (The
    # reference merges pairwise once and can leave a triple overlap; merging to a fixpoint here.)
    out: list[Window] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def windows_from_anomalies(
    anomalies: Sequence[int] | np.ndarray,
    n: int,
    window_fraction: float = WINDOW_FRACTION,
    probation_percent: float = PROBATION_PERCENT,
) -> list[Window]:
    """NAB's windows around anomaly points (labeler.applyWindows + checkWindows).

    Each window has int(window_fraction * n / k) points split evenly around its anomaly (the
    reference's integer half-width, so 2 * (length // 2) + 1 points), clipped to [0, n - 1].
    Windows starting inside the probationary period are dropped (the reference drops the first
    only, as its labels never put two there); overlapping ones are merged.
    """
    points = sorted(int(a) for a in anomalies)
    if not points:
        return []
    if points[0] < 0 or points[-1] >= n:
        raise ValueError(f"anomaly indices must lie in [0, {n}), got {points[0]}..{points[-1]}")
    half = int(window_fraction * n / len(points)) // 2
    first_scored = probation_length(n, probation_percent)
    windows = [(max(a - half, 0), min(a + half, n - 1)) for a in points]
    return _merge([w for w in windows if w[0] >= first_scored])


def windows_from_segments(
    labels: np.ndarray,
    window_fraction: float = WINDOW_FRACTION,
    probation_percent: float = PROBATION_PERCENT,
) -> list[Window]:
    """NAB windows for labels given as anomalous segments (runs of 1s), not points.

    Each segment's start is its anomaly point (NAB labels the onset of an anomaly), so the window
    is NAB's, centred there with NAB's width for that many segments; where a segment outlasts
    that window, the window is extended to the segment's end, so that alerts during a long
    labelled anomaly are not counted as false positives. Extending lengthens the window and so
    stretches its sigmoid: early detections of a long segment are rewarded a little more.
    """
    labels = np.asarray(labels)
    segs = segments(labels)
    if not segs:
        return []
    n = len(labels)
    half = int(window_fraction * n / len(segs)) // 2
    first_scored = probation_length(n, probation_percent)
    windows = [(max(s - half, 0), max(min(s + half, n - 1), e - 1)) for s, e in segs]
    return _merge([w for w in windows if w[0] >= first_scored])


@dataclass
class _Points:
    """Per-point scoring terms of one series."""

    reward: np.ndarray  # float: TP reward inside a window, FP cost outside
    window: np.ndarray  # int: window number, -1 outside every window
    scorable: np.ndarray  # bool: past the probationary period
    counted: np.ndarray  # bool per window: has a scorable point, so can be missed


def _check_windows(windows: Sequence[Window], n: int) -> list[Window]:
    out = [(int(s), int(e)) for s, e in windows]
    for k, (s, e) in enumerate(out):
        if not 0 <= s <= e < n:
            raise ValueError(f"window {(s, e)} is not inside a series of {n} points")
        if k and s <= out[k - 1][1]:
            raise ValueError(f"windows must be sorted and disjoint: {out[k - 1]} then {(s, e)}")
    return out


def _points(n: int, windows: Sequence[Window], profile: Profile, probation_percent: float) -> _Points:
    wins = _check_windows(windows, n)
    idx = np.arange(n)
    window = np.full(n, -1, dtype=np.int64)
    reward = np.empty(n, dtype=np.float64)
    starts = np.array([s for s, _ in wins], dtype=np.int64)
    ends = np.array([e for _, e in wins], dtype=np.int64)
    for k, (s, e) in enumerate(wins):
        window[s : e + 1] = k
    inside = window >= 0
    # Inside: position -(end - i + 1) / W runs from -1 at the first point to -1/W at the last;
    # normalising by S(-1) makes the first point worth exactly A_TP.
    w_in = window[inside]
    width = (ends[w_in] - starts[w_in] + 1).astype(np.float64)
    pos = -(ends[w_in] - idx[inside] + 1) / width
    reward[inside] = profile.a_tp * scaled_sigmoid(pos) / scaled_sigmoid(-1.0)
    # Outside: distance past the closest preceding window's end, in its lengths minus one.
    out = ~inside
    prev = np.searchsorted(ends, idx[out], side="left") - 1  # last window ending before i
    unweighted = np.full(int(out.sum()), -1.0)  # no preceding window: the full FP cost
    has = prev >= 0
    p = prev[has]
    # A one-point window would divide by zero in the reference; its distance counts in points here.
    span = np.maximum(ends[p] - starts[p], 1).astype(np.float64)
    unweighted[has] = scaled_sigmoid((idx[out][has] - ends[p]) / span)
    reward[out] = -profile.a_fp * unweighted
    scorable = idx >= probation_length(n, probation_percent)
    counted = np.zeros(len(wins), dtype=bool)
    counted[np.unique(window[scorable & inside])] = True
    return _Points(reward=reward, window=window, scorable=scorable, counted=counted)


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    return PROFILES[profile]


def score_series(
    detections: np.ndarray,
    windows: Sequence[Window],
    profile: str | Profile = "standard",
    probation_percent: float = PROBATION_PERCENT,
) -> SeriesScore:
    """NAB raw score of one series for fixed binary detections."""
    prof = _profile(profile)
    det = np.asarray(detections, dtype=bool)
    pts = _points(len(det), windows, prof, probation_percent)
    det = det & pts.scorable
    inside = pts.window >= 0
    hit = det & inside
    # Points are in time order, so the first occurrence of a window number is its earliest detection.
    first_wins, first_at = np.unique(pts.window[hit], return_index=True)
    tp_reward = float(pts.reward[np.flatnonzero(hit)[first_at]].sum())
    fp_reward = float(pts.reward[det & ~inside].sum())
    missed = int(pts.counted.sum()) - len(first_wins)
    return SeriesScore(
        score=tp_reward + fp_reward + prof.a_fn * missed,
        tp=int(hit.sum()),
        fp=int((det & ~inside).sum()),
        fn=int((pts.scorable & inside & ~det).sum()),
        tn=int((pts.scorable & ~inside & ~det).sum()),
        windows=int(pts.counted.sum()),
        windows_detected=len(first_wins),
    )


def sweep(
    series: Sequence[tuple[np.ndarray, Sequence[Window]]],
    profile: str | Profile = "standard",
    probation_percent: float = PROBATION_PERCENT,
) -> Sweep:
    """Corpus raw score at every threshold: NAB's Sweeper.calcScoreByThreshold over all series.

    Lowering the threshold past a point adds its FP cost, or, inside a window, replaces the
    window's value by this point's reward when it is the window's earliest detection so far
    (a miss, A_FN, before the first). Sorting all points by score once turns that into cumsums.
    """
    prof = _profile(profile)
    scores_l, reward_l, window_l = [], [], []
    n_windows = 0
    for scores, windows in series:
        s = np.asarray(scores, dtype=np.float64)
        if np.isnan(s).any():
            raise ValueError("anomaly scores contain NaN; NAB's threshold has no meaning for them")
        pts = _points(len(s), windows, prof, probation_percent)
        keep = pts.scorable
        scores_l.append(s[keep])
        reward_l.append(pts.reward[keep])
        # Number windows across the corpus; concatenated, each series' points stay in time order.
        window_l.append(np.where(pts.window[keep] >= 0, pts.window[keep] + n_windows, -1))
        n_windows += len(pts.counted)
    s = np.concatenate(scores_l) if scores_l else np.empty(0)
    reward = np.concatenate(reward_l) if reward_l else np.empty(0)
    window = np.concatenate(window_l) if window_l else np.empty(0, dtype=np.int64)
    counted = len(np.unique(window[window >= 0]))

    order = np.argsort(-s, kind="stable")
    s_sorted, w_sorted, r_sorted = s[order], window[order], reward[order]
    inside = w_sorted >= 0
    delta = np.where(inside, 0.0, r_sorted)

    # Inside windows: within each window (grouped by a stable sort on the window number), the
    # earliest point detected so far is a running minimum of the point's position in time; its
    # reward is the window's value. Running minima per group come from one maximum.accumulate
    # on integers offset by group, so they are exact.
    pos_in = np.flatnonzero(inside)  # positions in the sorted order
    grp = np.argsort(w_sorted[pos_in], kind="stable")
    pos_g = pos_in[grp]
    w_g = w_sorted[pos_g]
    t_g = order[pos_g]  # position in time (concatenated scorable points keep each series' order)
    big = len(s) + 1
    first_seen = np.maximum.accumulate(w_g * big - t_g)
    earliest = w_g * big - first_seen
    value = reward[earliest]
    new_group = np.ones(len(w_g), dtype=bool)
    new_group[1:] = w_g[1:] != w_g[:-1]
    before = np.where(new_group, prof.a_fn, np.roll(value, 1))
    delta[pos_g] = value - before
    newly_detected = np.zeros(len(s), dtype=np.int64)
    newly_detected[pos_g[new_group]] = 1

    # A threshold includes every point scoring at least it: read the sums at the end of each tie.
    last = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True)) if len(s) else np.empty(0, int)
    base = prof.a_fn * counted
    total_in, total_out = int(inside.sum()), int((~inside).sum())
    tp = np.concatenate([[0], np.cumsum(inside)[last]])
    fp = np.concatenate([[0], np.cumsum(~inside)[last]])
    return Sweep(
        thresholds=np.concatenate([[np.inf], s_sorted[last]]),
        scores=np.concatenate([[base], base + np.cumsum(delta)[last]]),
        tp=tp,
        fp=fp,
        fn=total_in - tp,
        tn=total_out - fp,
        windows_detected=np.concatenate([[0], np.cumsum(newly_detected)[last]]),
        windows=counted,
    )


def _as_windows(labels: object, n: int, probation_percent: float) -> list[Window]:
    """Windows as given (pairs), from anomaly indices (1-D ints), or from a bool label array."""
    arr = np.asarray(labels)
    if arr.size == 0:
        return []
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"a bool label array must have one entry per point ({n}), got {arr.shape}")
        return windows_from_segments(arr, probation_percent=probation_percent)
    if arr.ndim == 2 and arr.shape[1] == 2:
        return [(int(a), int(b)) for a, b in arr]
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        return windows_from_anomalies(arr, n, probation_percent=probation_percent)
    raise ValueError("labels must be (start, end) windows, anomaly indices, or a bool label array")


def nab_score(
    series: Sequence[tuple[np.ndarray, object]],
    profile: str | Profile = "standard",
    threshold: float | None = None,
    probation_percent: float = PROBATION_PERCENT,
) -> NabResult:
    """NAB's score of a detector over a corpus, for one profile.

    series: (anomaly scores, labels) per series; labels are inclusive (start, end) windows,
    anomaly point indices (1-D ints: NAB windows are built around them), or a bool array with
    anomalous segments (windows_from_segments). Without `threshold` the best one for this corpus
    and profile is swept for, as NAB's optimiser does; with it (say, tuned on another corpus),
    detections are scores >= threshold. Binary detections are scores 0/1 with threshold 1.

    The null baseline is NAB's null detector: a constant score at its own best threshold, i.e.
    the better of never and always detecting (never, except on toy series). The perfect score
    is a detection at each window's first scorable point: A_TP per window.
    """
    prof = _profile(profile)
    corpus = [
        (np.asarray(s, dtype=np.float64), _as_windows(lab, len(s), probation_percent)) for s, lab in series
    ]
    sw = sweep(corpus, prof, probation_percent)
    # With a threshold given, the lowest candidate at or above it detects exactly the points >= it.
    at = None if threshold is None else int(np.searchsorted(-sw.thresholds, -threshold, side="right")) - 1
    j = sw.best() if at is None else at
    raw = float(sw.scores[j])
    never = prof.a_fn * sw.windows
    always = sum(score_series(np.ones(len(s), bool), w, prof, probation_percent).score for s, w in corpus)
    null = max(never, always)
    perfect = 0.0
    for s, w in corpus:
        first_scored = probation_length(len(s), probation_percent)
        det = np.zeros(len(s), dtype=bool)
        for start, end in w:
            if end >= first_scored:
                det[max(start, first_scored)] = True
        perfect += score_series(det, w, prof, probation_percent).score
    used = float(sw.thresholds[j]) if threshold is None else float(threshold)
    per_series = [score_series(s >= used, w, prof, probation_percent).score for s, w in corpus]
    return NabResult(
        profile=profile if isinstance(profile, str) else "custom",
        threshold=used,
        score=100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan"),
        raw=raw,
        null=null,
        perfect=perfect,
        tp=int(sw.tp[j]),
        fp=int(sw.fp[j]),
        fn=int(sw.fn[j]),
        tn=int(sw.tn[j]),
        windows=sw.windows,
        windows_detected=int(sw.windows_detected[j]),
        per_series=per_series,
    )
