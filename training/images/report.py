"""PNG figures of an image bundle: reconstructions, score histogram, ROC, latent PCA, top anomalies."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_curve

from training.core.figures import save_figure  # also selects matplotlib's file-only backend


def reconstructions(
    normal: np.ndarray, normal_rec: np.ndarray, anomal: np.ndarray, anomal_rec: np.ndarray, path: Path
) -> str:
    rows = [(normal, "normal"), (normal_rec, "reconstructed")]
    if len(anomal):  # a data set without anomalies shows its normals alone
        rows += [(anomal, "anomaly"), (anomal_rec, "reconstructed")]
    n = min(10, *(len(imgs) for imgs, _ in rows))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, 1.2 * len(rows)), squeeze=False)
    for r, (imgs, label) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("inputs and their reconstructions from the latent mean")
    return save_figure(fig, path)


def score_histogram(scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bins = np.geomspace(max(scores.min(), 1e-3), scores.max(), 80)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomaly")
    ax.axvline(threshold, color="red", lw=1.2, label=f"threshold {threshold:.1f}")
    ax.set_xscale("log")
    ax.set_xlabel("anomaly score (log scale)")
    ax.set_ylabel("records")
    ax.legend()
    ax.set_title("anomaly scores on the evaluation set")
    return save_figure(fig, path)


def roc(scores: np.ndarray, labels: np.ndarray, auc: float, path: Path) -> str:
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot(fpr, tpr, label=f"AUC {auc:.4f}")
        ax.set_xlabel("false-alarm rate" + (" (log)" if log else ""))
        ax.set_ylabel("recall")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(1e-4, 1)
        else:
            ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.legend(loc="lower right")
    fig.suptitle("ROC curve on the evaluation set")
    return save_figure(fig, path)


def latent_pca(mu: np.ndarray, digits: np.ndarray, normal: tuple[int, ...], path: Path) -> str:
    coords = PCA(n_components=2, random_state=0).fit_transform(mu)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10")
    for d in range(10):
        sel = digits == d
        if sel.any():
            ax.scatter(
                coords[sel, 0],
                coords[sel, 1],
                s=4,
                color=cmap(d),
                alpha=0.6,
                label=f"{d}{' (normal)' if d in normal else ''}",
            )
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set_title("latent means, 2-D PCA (test set)")
    return save_figure(fig, path)


def top_anomalies(images: np.ndarray, scores: np.ndarray, digits: np.ndarray, path: Path, n: int = 24) -> str:
    order = np.argsort(-scores)[:n]
    cols = 8
    rows = (len(order) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{digits[i]}: {scores[i]:.0f}", fontsize=8)
    fig.suptitle("most anomalous test images (digit: score)")
    return save_figure(fig, path)
