"""Point-adjusted detection metrics (as Donut reports them), per anomaly kind, and the comparison table.

Point adjustment (Xu et al., Donut, WWW 2018): a labelled anomaly segment (a run of
consecutive anomalous points) counts as detected entirely when any of its points is
alerted, and entirely missed otherwise; alerts on normal points are false positives.
With `delay`, only alerts within the first `delay` + 1 points of a segment count (the
KDD Cup 2018 variant); the default, None, is Donut's: no delay limit.

Precision, recall and F1 pool the points of every series' test part. Per kind, F1 counts
that kind's segments against ALL false positives ("F1 if this were the only kind"): a
detector cannot buy recall on one kind with false alarms everywhere else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from training.kpi.labels import segments
from training.kpi.nab import nab_score, windows_from_segments


@dataclass
class SeriesOutcome:
    """A detector's alerts on the evaluated (real, test-part) points of one series."""

    labels: np.ndarray  # int8, 1 = anomaly
    kinds: np.ndarray  # str per point, "" for normal
    alerts: np.ndarray  # bool
    days: float  # how long the evaluated part is


@dataclass
class KindResult:
    segments: int = 0
    detected: int = 0
    points: int = 0
    tp: int = 0  # points in detected segments (point-adjusted)
    recall: float = 0.0  # point-adjusted: tp / points
    f1: float = 0.0  # this kind's tp against every false positive


@dataclass
class Detection:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    segments: int
    detected: int
    false_alarms_per_day: float  # alerted normal points per series-day
    days: float
    points: int = 0  # evaluated points
    per_kind: dict[str, KindResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def point_adjust(labels: np.ndarray, alerts: np.ndarray, delay: int | None = None) -> np.ndarray:
    """Alerts after point adjustment: every point of a detected segment on, of a missed one off."""
    adjusted = np.asarray(alerts, dtype=bool).copy()
    for start, end in segments(labels):
        stop = end if delay is None else min(end, start + delay + 1)
        adjusted[start:end] = adjusted[start:stop].any()
    return adjusted


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate(outcomes: list[SeriesOutcome], delay: int | None = None) -> Detection:
    tp = fp = fn = n_seg = n_det = points = 0
    days = 0.0
    kinds: dict[str, KindResult] = defaultdict(KindResult)
    for o in outcomes:
        lab = np.asarray(o.labels, dtype=np.int8)
        adj = point_adjust(lab, o.alerts, delay)
        tp += int((adj & (lab == 1)).sum())
        fn += int((~adj & (lab == 1)).sum())
        fp += int((adj & (lab == 0)).sum())
        days += o.days
        points += len(lab)
        for start, end in segments(lab):
            names, counts = np.unique(np.asarray(o.kinds[start:end], dtype=str), return_counts=True)
            k = kinds[str(names[np.argmax(counts)]) or "anomaly"]
            hit = bool(adj[start])
            k.segments += 1
            k.detected += hit
            k.points += end - start
            k.tp += (end - start) if hit else 0
            n_seg += 1
            n_det += hit
    for k in kinds.values():
        _, k.recall, k.f1 = _f1(k.tp, fp, k.points - k.tp)
    precision, recall, f1 = _f1(tp, fp, fn)
    return Detection(
        precision=precision,
        recall=recall,
        f1=f1,
        tp=tp,
        fp=fp,
        fn=fn,
        segments=n_seg,
        detected=n_det,
        false_alarms_per_day=fp / days if days else 0.0,
        days=days,
        points=points,
        per_kind=dict(sorted(kinds.items())),
    )


NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass
class DetectorReport:
    """One detector on one corpus: NAB's scores (its threshold swept, NAB's rules), the best
    point-adjusted F1 over one threshold for the whole corpus, and the figures at its own
    default thresholds (what it would alert on in production)."""

    name: str
    nab: dict[str, float]
    best_f1: float
    default: Detection
    # At the default thresholds: NAB windows with an alert, of all, and where in them the first alert
    # falls on average (0 = the window's first point, 1 = its last; NAB pays most for early ones).
    windows_found: int = 0
    windows: int = 0
    earliness: float = float("nan")

    def as_dict(self) -> dict[str, object]:
        out = {"name": self.name, "nab": self.nab, "best_f1": self.best_f1}
        timing = {"windows_found": self.windows_found, "windows": self.windows, "earliness": self.earliness}
        return {**out, "default": self.default.as_dict(), **timing}


def best_point_adjusted_f1(ratios: list[np.ndarray], labels: list[np.ndarray], candidates: int = 60) -> float:
    """The highest pooled point-adjusted F1 over one threshold on score / threshold for all series."""
    pooled = np.concatenate(ratios) if ratios else np.zeros(0)
    pooled = pooled[pooled > 0]
    if pooled.size == 0 or not any(np.any(lab) for lab in labels):
        return 0.0
    best = 0.0
    # Quantiles of the scores, the default threshold (1) and the highest scores themselves: a
    # detector that alerts rarely has its best threshold among its top scores.
    top = np.sort(pooled)[-candidates:]
    for t in np.unique(np.r_[np.quantile(pooled, np.linspace(0.5, 1.0, candidates)), 1.0, top]):
        tp = fp = fn = 0
        for r, lab in zip(ratios, labels, strict=True):
            adj = point_adjust(lab, r >= t)
            tp += int((adj & (lab == 1)).sum())
            fp += int((adj & (lab == 0)).sum())
            fn += int((~adj & (lab == 1)).sum())
        best = max(best, _f1(tp, fp, fn)[2])
    return best


def report(
    name: str,
    ratios: list[np.ndarray],
    labels: list[np.ndarray],
    default: Detection,
    probation_percent: float,
) -> DetectorReport:
    """NAB and point-adjusted figures of one detector; `ratios` is score / threshold on every point."""

    corpus = [(r, np.asarray(lab, dtype=bool)) for r, lab in zip(ratios, labels, strict=True)]
    has_windows = any(lab.any() for _, lab in corpus)
    nab = {
        p: (nab_score(corpus, p, probation_percent=probation_percent).score if has_windows else float("nan"))
        for p in NAB_PROFILES
    }
    found, total, early = window_timing(corpus, probation_percent)
    return DetectorReport(name, nab, best_point_adjusted_f1(ratios, labels), default, found, total, early)


def window_timing(
    corpus: list[tuple[np.ndarray, np.ndarray]], probation_percent: float
) -> tuple[int, int, float]:
    """(NAB windows with an alert at the default thresholds (ratio >= 1), all windows, mean position of
    each one's first alert in it: 0 its first point, 1 its last)."""

    found = total = 0
    positions = []
    for ratio, lab in corpus:
        for start, end in windows_from_segments(lab, probation_percent=probation_percent):
            total += 1
            hits = np.flatnonzero(ratio[start : end + 1] >= 1.0)
            if hits.size:
                found += 1
                positions.append(hits[0] / max(end - start, 1))
    return found, total, float(np.mean(positions)) if positions else float("nan")


def nothing_to_compare(reports: list[DetectorReport]) -> bool:
    """No labelled anomaly window in what was evaluated, so no detection figure means anything (NAB's
    would be nan, F1 0/0). NAB's windows decide, not the default figures' segments: the windows leave
    out NAB's probationary part, as the scores do, and every printed line must agree on this."""
    return all(r.windows == 0 for r in reports)


def _cell(value: float, spec: str) -> str:
    """A table cell; '-' where a figure does not exist (e.g. where in a window the first alert falls,
    when no window has an alert), rather than a bare nan."""
    return f"{value:>12{spec}}" if np.isfinite(value) else f"{'-':>12}"


def format_comparison(reports: list[DetectorReport], what: str) -> str:
    """Detectors side by side: NAB (standard, low FP, low FN), best PA-F1, then at default thresholds."""
    head = f"{'':<22}" + "".join(f"{r.name:>12}" for r in reports)
    if nothing_to_compare(reports):
        # Without labelled anomalies there is nothing to detect: report alert rates, not a 0/0 table.
        return "\n".join(
            [
                f"{what}: {_no_windows(reports)}, so no detection figures; alert rates only",
                head,
                f"{'alerts / series-day':<22}"
                + "".join(f"{r.default.false_alarms_per_day:>12.2f}" for r in reports),
            ]
        )
    rows = [
        f"{what}",
        head,
        *(
            f"{'NAB ' + label:<22}" + "".join(_cell(r.nab[p], ".1f") for r in reports)
            for p, label in zip(NAB_PROFILES, ("standard", "low FP", "low FN"), strict=True)
        ),
        f"{'PA-F1, best threshold':<22}" + "".join(f"{r.best_f1:>12.3f}" for r in reports),
        "at default thresholds:",
        f"{'  precision':<22}" + "".join(f"{r.default.precision:>12.3f}" for r in reports),
        f"{'  recall':<22}" + "".join(f"{r.default.recall:>12.3f}" for r in reports),
        f"{'  PA-F1':<22}" + "".join(f"{r.default.f1:>12.3f}" for r in reports),
        f"{'  false alarms / day':<22}"
        + "".join(f"{r.default.false_alarms_per_day:>12.2f}" for r in reports),
        f"{'  segments detected':<22}"
        + "".join(f"{f'{r.default.detected}/{r.default.segments}':>12}" for r in reports),
        f"{'  NAB windows found':<22}" + "".join(f"{f'{r.windows_found}/{r.windows}':>12}" for r in reports),
        f"{'  first alert in win.':<22}" + "".join(_cell(r.earliness, ".2f") for r in reports),
    ]
    kinds = sorted({k for r in reports for k in r.default.per_kind})
    if kinds:
        rows += ["recall per kind at default thresholds (point-adjusted):"]
        for kind in kinds:
            cells = []
            for r in reports:
                k = r.default.per_kind.get(kind)
                cells.append(f"{f'{k.detected}/{k.segments}' if k else '-':>12}")
            rows.append(f"{'  ' + kind:<22}" + "".join(cells))
    rows.append(
        "NAB: Numenta Anomaly Benchmark rules, threshold swept per detector over the corpus; PA-F1: "
        "point-adjusted (Donut); default: each detector's own thresholds; first alert in win.: where "
        "in a NAB window its first alert falls (0 = its start, 1 = its end)"
    )
    return "\n".join(rows)


def _no_windows(reports: list[DetectorReport]) -> str:
    """Why there are no labelled windows: none at all, or only in the part NAB does not score."""
    earlier = max(r.default.segments for r in reports)
    if not earlier:
        return "no labelled anomalies there"
    # The default figures count segments from each series' first point; NAB's windows start after
    # its probationary part: say where the labels are, so "0/1 detected" is not left to contradict.
    return (f"no labelled anomaly windows there ({earlier} labelled segment(s) lie in or next to NAB's "
            "probationary first part, whose windows are not scored)")  # fmt: skip
