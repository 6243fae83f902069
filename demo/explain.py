"""Alerts, explained. One image alert: its image, the model's reconstruction and the anomaly map the alert
carries, in the terminal (shaded characters, the region boxed) and as a PNG. One KPI alert: its series
with the expected value and the normal band its outputs carry, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.core.onnx_scoring import cpu_session, run_batched
from training.images.mnist import scale_pixels
from worker.explain import decode_map

SHADES = " .:-=+*#%@"  # darkest to brightest


def reconstruction(bundle_folder: Path, image_u8: np.ndarray) -> np.ndarray:
    """The bundle's reconstruction of one uint8 image, in [0, 1]: what the model expected to see."""
    session = cpu_session(bundle_folder / "model.onnx")
    [recon] = run_batched(session, scale_pixels(image_u8[None]), ("reconstruction",))
    return recon[0]


def _shade(values: np.ndarray) -> list[str]:
    """Rows of characters for values in [0, 1]."""
    levels = np.clip((values * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return ["".join(SHADES[v] for v in row) for row in levels]


def _boxed(rows: list[str], region: dict, cell: int) -> list[str]:
    """The map's rows with the region's border drawn in '#' outline characters ('[' and ']' at the sides)."""
    y0, x0 = region["y"] // cell, region["x"] // cell
    y1 = y0 + max(1, -(-region["height"] // cell)) - 1
    x1 = x0 + max(1, -(-region["width"] // cell)) - 1
    out = []
    for r, row in enumerate(rows):
        chars = list(row)
        if y0 <= r <= y1:
            chars[x0] = "["
            chars[x1] = "]" if x1 != x0 else "|"
        out.append("".join(chars))
    return out


def terminal_lines(image_u8: np.ndarray, recon: np.ndarray, published: dict) -> list[str]:
    """Image | reconstruction | map, side by side, the map's region between brackets."""
    cells = decode_map(published) / 255.0
    region = published["region"]
    panels = [_shade(image_u8 / 255.0), _shade(recon), _boxed(_shade(cells), region, published["cell"])]
    widths = [len(p[0]) for p in panels]
    head = ["image", "reconstruction", "anomaly map"]
    lines = ["  " + "   ".join(h[:w].ljust(w) for h, w in zip(head, widths, strict=True))]
    for r in range(max(len(p) for p in panels)):
        row = ((p[r] if r < len(p) else "").ljust(w) for p, w in zip(panels, widths, strict=True))
        lines.append("  " + "   ".join(row))
    lines.append(
        f"  region: {region['width']} x {region['height']} pixels at x={region['x']}, y={region['y']}, "
        f"{region['error_share']:.0%} of the error; the image is {published['direction']} there than the "
        "model expected"
    )
    return lines


def write_png(image_u8: np.ndarray, recon: np.ndarray, published: dict, title: str, path: Path) -> Path:
    """The three panels as a PNG, the region outlined on the map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cells = decode_map(published) / 255.0 * published["max_error"]
    region, cell = published["region"], published["cell"]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    panels = ((axes[0], image_u8 / 255.0, "image", "gray"), (axes[1], recon, "reconstruction", "gray"),
              (axes[2], cells, "anomaly map |image - reconstruction|", "inferno"))  # fmt: skip
    for ax, data, name, cmap in panels:
        shown = ax.imshow(data, cmap=cmap, vmin=0, vmax=1 if cmap == "gray" else None)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.04)
    for ax, scale in ((axes[0], 1), (axes[2], cell)):
        corner = (region["x"] / scale - 0.5, region["y"] / scale - 0.5)
        ax.add_patch(Rectangle(corner, region["width"] / scale, region["height"] / scale, fill=False,
                               edgecolor="cyan", linewidth=1.5))  # fmt: skip
    fig.suptitle(f"{title}: region {region['width']}x{region['height']} at ({region['x']}, {region['y']}), "
                 f"{region['error_share']:.0%} of the error", fontsize=9)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_band_png(outputs: list[dict], alert: dict, path: Path, days: float = 1.0) -> Path:
    """A series' values around `alert` (the last `days` before it and a few hours after), the expected
    value and the band from its score and alert messages, the alerts marked."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.pyplot as plt

    def when(o: dict) -> float:
        return datetime.fromisoformat(o["ts"].replace("Z", "+00:00")).timestamp()

    at = when(alert)
    near = sorted((o for o in outputs if at - days * 86400 <= when(o) <= at + 0.25 * days * 86400), key=when)
    t = np.array([(when(o) - at) / 3600 for o in near])
    value = np.array([o["value"] for o in near])
    band = np.array([[o.get(k) if o.get(k) is not None else np.nan for k in ("expected", "lower", "upper")]
                     for o in near])  # fmt: skip
    alerted = np.array(["severity" in o for o in near])
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.fill_between(t, band[:, 1], band[:, 2], color="tab:blue", alpha=0.18, label="normal band")
    ax.plot(t, band[:, 0], color="tab:blue", lw=0.8, ls="--", label="expected")
    ax.plot(t, value, color="black", lw=0.8, label="value")
    ax.scatter(t[alerted], value[alerted], color="tab:red", zorder=3, s=18, label="alert")
    ax.set_xlabel("hours from the alert")
    ax.set_title(f"{alert['series_key']}: alert by {alert.get('detector')} at {alert['ts'][:16]}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
