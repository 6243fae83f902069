"""The bench's two figures: where each transport's throughput stands against its targets, and latency CDFs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np

from training.core.figures import save_figure


def throughput(scoring: dict[str, float], per_transport: dict[str, dict[str, float]], path: Path) -> Path:
    """Bars of (b), (b1) and each transport's stages ((a), (c), (c5), (d)), with the target of (c) and
    (c5): 0.85 x min((a), (b))."""
    fig, ax = plt.subplots(figsize=(9, 4))
    labels, values, colours = [], [], []
    for name, rate in scoring.items():
        labels.append(name)
        values.append(rate)
        colours.append("#9e9e9e")
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    for (transport, stages), colour in zip(per_transport.items(), palette, strict=False):
        start = len(labels)
        for name, rate in stages.items():
            labels.append(f"{name}\n{transport}")
            values.append(rate)
            colours.append(colour)
        target = 0.85 * min(stages["(a) consume"], scoring["(b) onnxruntime"])
        ax.hlines(target, start - 0.4, len(labels) - 0.6, colors=colour, linestyles="--",
                  label=f"{transport}: (c), (c5) target 0.85 x min((a), (b)) = {target:,.0f}/s")  # fmt: skip
    # A fast consumer can read ten times what anything else does: cut the axis above the rest
    # so the bars that matter stay readable, and say so on the bars that are cut.
    rest = [v for label, v in zip(labels, values, strict=True) if not label.startswith("(a)")]
    top = 1.3 * max(rest)
    bars = ax.bar(range(len(values)), np.minimum(values, top), color=colours)
    texts = [f"{v / 1000:.1f}k" + (" (cut)" if v > top else "") for v in values]
    ax.bar_label(bars, labels=texts, fontsize=8)
    ax.set_ylim(0, 1.4 * top)  # room for the legend above the bars
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("records / s")
    ax.set_title("Throughput of each stage (CPU, one worker process)")
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)
    return path


def latency_cdf(latencies_ms: dict[str, np.ndarray], rate: float, path: Path) -> Path:
    """Share of records alerted within x ms, per transport, with p50/p99 marked and the 50 ms target."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, lat in latencies_ms.items():
        if len(lat) == 0:
            continue
        x = np.sort(lat)
        p50, p99 = np.percentile(x, [50, 99])
        label = f"{name}: p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        ax.plot(np.maximum(x, 1), np.arange(1, len(x) + 1) / len(x), label=label)
    ax.axvline(50, color="grey", linestyle="--", label="p99 target 50 ms")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("produce -> alert (ms, broker timestamps)")
    ax.set_ylabel("share of records")
    ax.set_title(f"End-to-end latency at {rate:,.0f} records/s")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return path
