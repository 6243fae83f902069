"""PNG figures of a KPI bundle: series with alerts, scores and labels; recall per kind per detector."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from training.core.figures import save_figure  # also selects matplotlib's file-only backend
from training.kpi.evaluate import DetectorReport
from training.kpi.labels import segments
from training.kpi.scoring import Scored
from training.kpi.windows import SeriesData

DPI = 100  # the series figure is tall: a lower resolution keeps the file small


def series_scores(series: list[SeriesData], scored: dict[str, list[Scored]], path: Path, n: int = 6) -> str:
    """For the first n series: values with labelled windows shaded and the detector's alerts marked
    (coloured by the part that fired), then score / threshold of the detector and of the z-score."""
    from schemas.detect import PARTS

    n = min(n, len(series))
    palette = plt.get_cmap("tab10")
    colours = {part: palette(k) for k, part in enumerate(PARTS)}
    fig, axes = plt.subplots(2 * n, 1, figsize=(13, 3.8 * n), squeeze=False)
    for i in range(n):
        s = series[i]
        ax_x, ax_r = axes[2 * i, 0], axes[2 * i + 1, 0]
        t = np.arange(len(s.grid)) * s.interval_s / 86_400.0  # days since the series began
        ax_x.plot(t, s.grid.values, lw=0.5, color="black")
        for ax in (ax_x, ax_r):
            for start, end in segments(s.labels):
                ax.axvspan(t[start], t[min(end, len(t) - 1)], color="orange", alpha=0.35, lw=0)
            for bound in (s.train_end, s.val_end):
                ax.axvline(t[min(bound, len(t) - 1)], color="grey", lw=0.8, ls="--")
        ours = scored["detector"][i]
        for k, part in enumerate(PARTS):
            hits = ours.ends[ours.alerts & (ours.parts == k)]
            if hits.size:
                ax_x.plot(t[hits], s.grid.values[hits], "o", ms=4, mfc="none", color=colours[part],
                          label=f"alert: {part}")  # fmt: skip
        for name, colour in (("detector", "tab:blue"), ("zscore", "tab:green")):
            sc = scored[name][i]
            ax_r.plot(
                t[sc.ends],
                np.maximum(sc.ratio(), 1e-3),
                lw=0.5,
                color=colour,
                label=f"{name} score/threshold",
            )
        ax_r.axhline(1.0, color="red", lw=0.9)
        ax_r.set_yscale("log")
        ax_r.legend(loc="upper left", fontsize=7)
        ax_x.set_title(f"{s.key}: train | validation | test; labelled anomalies shaded", fontsize=9)
        ax_x.legend(loc="upper left", fontsize=7)
        ax_r.set_xlabel("days")
    return save_figure(fig, path, DPI)


def recall_per_kind(reports: list[DetectorReport], path: Path) -> str:
    """Point-adjusted recall per anomaly kind at each detector's default thresholds."""
    kinds = sorted({k for r in reports for k in r.default.per_kind})
    x = np.arange(len(kinds) + 1)
    width = 0.8 / max(len(reports), 1)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for j, r in enumerate(reports):
        values = [r.default.f1] + [
            r.default.per_kind[k].recall if k in r.default.per_kind else 0.0 for k in kinds
        ]
        ax.bar(x - 0.4 + width * (j + 0.5), values, width, label=r.name)
    ax.set_xticks(x, ["overall F1", *kinds], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("point-adjusted recall (F1 for overall)")
    ax.legend()
    ax.set_title("test parts, default thresholds: recall per anomaly kind")
    return save_figure(fig, path, DPI)
