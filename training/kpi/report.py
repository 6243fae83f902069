"""PNG figures of a KPI bundle: series with score, threshold and labels; recall per kind, VAE vs baseline."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from training.kpi.evaluate import Detection, segments
from training.kpi.scoring import Scored
from training.kpi.windows import SeriesData
from training.report import save_figure  # also selects matplotlib's file-only backend

DPI = 100  # the series figure is tall: a lower resolution keeps the file small


def series_scores(
    series: list[SeriesData],
    vae: list[Scored],
    base: list[Scored],
    vae_thresholds: dict[str, float],
    base_thresholds: dict[str, float],
    path: Path,
    n: int = 6,
) -> str:
    """For the first n series: values with labelled windows shaded and alerts marked, then the scores."""
    n = min(n, len(series))
    fig, axes = plt.subplots(3 * n, 1, figsize=(13, 5.4 * n), squeeze=False)
    for i in range(n):
        s, v, b = series[i], vae[i], base[i]
        ax_x, ax_v, ax_b = axes[3 * i, 0], axes[3 * i + 1, 0], axes[3 * i + 2, 0]
        t = np.arange(len(s.grid)) * s.interval_s / 86_400.0  # days since the series began
        ax_x.plot(t, s.grid.values, lw=0.5, color="black")
        for ax in (ax_x, ax_v, ax_b):
            for start, end in segments(s.labels):
                ax.axvspan(t[start], t[min(end, len(t) - 1)], color="orange", alpha=0.35, lw=0)
            for bound in (s.train_end, s.val_end):
                ax.axvline(t[min(bound, len(t) - 1)], color="grey", lw=0.8, ls="--")
        for sc, thr, ax, colour, label in (
            (v, vae_thresholds[s.key], ax_v, "tab:blue", "VAE score"),
            (b, base_thresholds[s.key], ax_b, "tab:green", "z-score"),
        ):
            ax.plot(t[sc.ends], np.maximum(sc.scores, 1e-6), lw=0.5, color=colour, label=label)
            ax.axhline(thr, color="red", lw=0.9, label=f"threshold {thr:.3g}")
            ax.set_yscale("log")
            ax.legend(loc="upper left", fontsize=7)
            hits = sc.ends[(sc.scores >= thr) & (s.part_of(sc.ends) == 2)]
            ax_x.plot(t[hits], s.grid.values[hits], ".", ms=3, color=colour, label=f"{label} alerts (test)")
        ax_x.set_title(f"{s.key}: train | validation | test; labelled anomalies shaded", fontsize=9)
        ax_x.legend(loc="upper left", fontsize=7)
        ax_b.set_xlabel("days")
    return save_figure(fig, path, DPI)


def recall_per_kind(vae: Detection, base: Detection, path: Path) -> str:
    kinds = list(vae.per_kind)
    x = np.arange(len(kinds) + 1)
    labels = ["overall F1", *kinds]
    v = [vae.f1] + [vae.per_kind[k].recall for k in kinds]
    b = [base.f1] + [base.per_kind[k].recall if k in base.per_kind else 0.0 for k in kinds]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(x - 0.2, v, 0.4, label="VAE")
    ax.bar(x + 0.2, b, 0.4, label="rolling z-score")
    ax.set_xticks(x, labels, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("point-adjusted recall (F1 for overall)")
    ax.legend()
    ax.set_title("test parts: recall per anomaly kind, VAE vs baseline")
    return save_figure(fig, path, DPI)
