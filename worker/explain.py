"""Where an image's anomaly lies: an alert's `anomaly_map` (schemas.outputs.AnomalyMap), made from the
signed residual (image - reconstruction, per cell) that the model's graph computes beside the score.

Alerts only (a few per hundred records), so this runs on the loop's thread, in a few tens of
microseconds. The published map is |residual| as uint8. The region is the box that best separates the
cells where the image departs from its reconstruction in the direction of the strongest departure
(brighter or darker) from the rest: a box of large sum of sqrt(departure) - REGION_LEVEL x its
largest value, grown from the strongest cell (best_box). The square root evens out a region the
model half reconstructs, so the box covers all of it rather than its worst edge
(docs/wire-format.md#anomaly-maps gives the measured overlap with pasted squares).
"""

from __future__ import annotations

import base64

import numpy as np

REGION_LEVEL = 0.3  # cells below this share of the strongest departure count against a box


def _best_run(running: np.ndarray) -> tuple[int, int]:
    """[start, end) of the run of largest sum, given the running sums of a profile (a 0 first)."""
    lowest = np.minimum.accumulate(running)
    end = int((running[1:] - lowest[:-1]).argmax())
    return int((running[: end + 1] == lowest[end]).argmax()), end + 1  # where that low was first reached


def best_box(gain: np.ndarray, seed: tuple[int, int], rounds: int = 8) -> tuple[int, int, int, int]:
    """(row, column, height, width) of a box of large sum of `gain` (h, w), grown from the `seed` cell.

    The best run of columns for the box's rows, then the best run of rows for those columns, and again
    until the box holds: each step's sum is at least the last's, and on maps of a region and noise it
    finds the box an exhaustive search finds (within a point or two of its overlap with pasted
    squares) in a third of the time. Each running sum is a difference of two rows (or columns) of
    the map's 2-D prefix sums, so a step is a handful of array operations on one row."""
    h, w = gain.shape
    prefix = np.zeros((h + 1, w + 1))
    np.cumsum(np.cumsum(gain, axis=0), axis=1, out=prefix[1:, 1:])
    rows, cols = (seed[0], seed[0] + 1), (seed[1], seed[1] + 1)
    for _ in range(rounds):
        new_cols = _best_run(prefix[rows[1]] - prefix[rows[0]])
        new_rows = _best_run(prefix[:, new_cols[1]] - prefix[:, new_cols[0]])
        if (new_rows, new_cols) == (rows, cols):
            break
        rows, cols = new_rows, new_cols
    return rows[0], cols[0], rows[1] - rows[0], cols[1] - cols[0]


def anomaly_map(residual: np.ndarray, cell: int, image_shape: tuple[int, ...]) -> dict[str, object]:
    """An alert's `anomaly_map`, as output_json takes it, from a record's residual (cells down, across)."""
    if not np.isfinite(residual).all():
        residual = np.nan_to_num(residual, nan=0.0, posinf=1.0, neginf=-1.0)
    error = np.abs(residual)
    top = float(error.max())
    # The strongest single departure names the direction: by mass, a model that draws a stroke where
    # there is none would often outweigh a pasted patch it half reconstructs.
    peak = int(np.argmax(error))
    brighter = bool(residual.flat[peak] >= 0)
    evened = np.sqrt(np.maximum(residual if brighter else -residual, 0.0), dtype=np.float64)
    r, c, rh, cw = best_box(evened - REGION_LEVEL * np.sqrt(top), divmod(peak, residual.shape[1]))
    total = float(error.sum())
    share = float(error[r : r + rh, c : c + cw].sum()) / total if total > 0 else 0.0
    scaled = (error * (255.0 / top) + 0.5).astype(np.uint8) if top > 0 else np.zeros(error.shape, np.uint8)
    y, x = r * cell, c * cell
    return {
        "height": residual.shape[0],
        "width": residual.shape[1],
        "cell": cell,
        "pixels": base64.b64encode(scaled.tobytes()).decode(),
        "max_error": top,
        "direction": "brighter" if brighter else "darker",
        "region": {
            "x": x,
            "y": y,
            "width": min(cw * cell, image_shape[1] - x),
            "height": min(rh * cell, image_shape[0] - y),
            "error_share": min(1.0, round(share, 4)),
        },
    }


def decode_map(published: dict[str, object]) -> np.ndarray:
    """A published map's cells as uint8 (height, width): for consumers, the demo and tests."""
    raw = base64.b64decode(str(published["pixels"]))
    return np.frombuffer(raw, np.uint8).reshape(int(published["height"]), int(published["width"]))
