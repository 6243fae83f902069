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


def segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive 1s."""
    lab = np.concatenate([[0], np.asarray(labels, dtype=np.int8), [0]])
    edges = np.flatnonzero(np.diff(lab))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


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


def format_table(vae: Detection, base: Detection, delay: int | None, window: int) -> str:
    rule = "no delay limit (Donut)" if delay is None else f"detected within {delay + 1} points of its start"
    fa_v, fa_b = vae.false_alarms_per_day, base.false_alarms_per_day
    seg_v, seg_b = f"{vae.detected}/{vae.segments}", f"{base.detected}/{base.segments}"
    per_k_v, per_k_b = (1000 * d.fp / d.points if d.points else 0.0 for d in (vae, base))
    if vae.segments == 0:
        # Without labelled anomalies there is nothing to detect: report alert rates, not a 0/0 table.
        return "\n".join(
            [
                f"test parts, {vae.days:.1f} series-days, {vae.points} points: no labelled anomalies there "
                "(no label column, or none in the test parts), so no detection figures; alert rates only",
                f"{'':<28}{'VAE':>10}{'z-score':>10}",
                f"{'alerts / series-day':<28}{fa_v:>10.2f}{fa_b:>10.2f}",
                f"{'alerts / 1k points':<28}{per_k_v:>10.2f}{per_k_b:>10.2f}",
            ]
        )
    lines = [
        f"test parts, {vae.days:.1f} series-days, {vae.points} points; point-adjusted ({rule}); "
        "pooled over series",
        f"{'':<28}{'VAE':>10}{'z-score':>10}",
        f"{'precision':<28}{vae.precision:>10.3f}{base.precision:>10.3f}",
        f"{'recall':<28}{vae.recall:>10.3f}{base.recall:>10.3f}",
        f"{'F1':<28}{vae.f1:>10.3f}{base.f1:>10.3f}",
        f"{'false alarms / series-day':<28}{fa_v:>10.2f}{fa_b:>10.2f}",
        f"{'false alarms / 1k points':<28}{per_k_v:>10.2f}{per_k_b:>10.2f}",
        f"{'segments detected':<28}{seg_v:>10}{seg_b:>10}",
    ]
    if vae.per_kind:
        lines += [
            "",
            f"{'kind':<14}{'segments':>9}{'VAE det':>9}{'z det':>9}{'VAE rec':>9}{'z rec':>9}"
            f"{'VAE F1':>9}{'z F1':>9}",
        ]
        for kind, v in vae.per_kind.items():
            b = base.per_kind.get(kind, KindResult())
            lines.append(
                f"{kind:<14}{v.segments:>9}{v.detected:>9}{b.detected:>9}{v.recall:>9.3f}{b.recall:>9.3f}"
                f"{v.f1:>9.3f}{b.f1:>9.3f}"
            )
        lines.append(
            "(rec: point-adjusted recall; F1 per kind: that kind's segments against all false alarms)"
        )
    lines.append(
        f"baseline: rolling z-score |x - mean| / std of the previous {window} points, same calibration"
    )
    return "\n".join(lines)


def verdict(vae: Detection, base: Detection) -> str:
    """One line: where the VAE's F1 beats the baseline's, and where it does not."""
    if vae.segments == 0:
        return "no labelled anomalies to compare the VAE and the z-score on"
    wins, losses = [], []
    (wins if vae.f1 > base.f1 else losses).append(f"overall F1 {vae.f1:.3f} vs {base.f1:.3f}")
    for kind, v in vae.per_kind.items():
        b = base.per_kind.get(kind, KindResult())
        (wins if v.f1 > b.f1 else losses).append(f"{kind} {v.f1:.3f} vs {b.f1:.3f}")
    out = "VAE beats the z-score on: " + (", ".join(wins) if wins else "nothing")
    return out + "; does not on: " + (", ".join(losses) if losses else "nothing")
