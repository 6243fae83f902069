"""Figures every bundle shares (the loss curves), and how any figure is written."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt

DPI = 110


def save_figure(fig: plt.Figure, path: Path, dpi: int = DPI) -> str:
    """Lay out, write and close a figure; returns the file name (for the manifest's file list)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path.name


def loss_curves(history: list[dict[str, float]], best_epoch: int, path: Path) -> str:
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, style in (("train", "-"), ("val", "--")):
        axes[0].plot(epochs, [h[f"{key}_loss"] for h in history], style, label=f"{key} loss (ELBO)")
        axes[1].plot(epochs, [h[f"{key}_recon"] for h in history], style, label=f"{key} reconstruction")
        axes[1].plot(epochs, [h[f"{key}_kl"] for h in history], style, label=f"{key} KL")
    for ax in axes:
        ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    axes[0].set_title("loss per record")
    axes[1].set_title("loss terms per record")
    return save_figure(fig, path)
