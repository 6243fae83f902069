"""Where an image's anomaly lies: an alert's `anomaly_map` (schemas.outputs.AnomalyMap), made from the
signed residual (image - reconstruction, per cell) that the model's graph computes beside the score.

Alerts only (a few per hundred records), so this runs on the loop's thread, for all the alerts of a
scored batch at once (anomaly_maps: the array work once, the boxes grown in lockstep): 28 us an alert
on batches of 13 alerts, against 50 us one at a time (2 cores, 2026-12-07). The published map is
|residual| as uint8. The region is the box that best separates the cells where the image departs
from its reconstruction in the direction of the strongest departure (brighter or darker) from the
rest: a box of large sum of sqrt(departure) - REGION_LEVEL x its largest value, grown from the
strongest cell (best_boxes). The square root evens out a region the model half reconstructs, so the
box covers all of it rather than its worst edge (docs/wire-format.md#anomaly-maps gives the
measured overlap with pasted squares).
"""

from __future__ import annotations

import base64

import numpy as np

REGION_LEVEL = 0.3  # cells below this share of the strongest departure count against a box


def _best_runs(running: np.ndarray, rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each row's run of largest sum, given the running sums of its profile (a 0 first):
    the end where the sum over the lowest point before it is largest, the start where that low was
    first reached. `rows`: arange(k); `positions`: arange(running.shape[1])."""
    lowest = np.minimum.accumulate(running, axis=1)
    end = (running[:, 1:] - lowest[:, :-1]).argmax(axis=1)
    low = (running == lowest[rows, end][:, None]) & (positions <= end[:, None])
    return low.argmax(axis=1), end + 1


def best_boxes(gain: np.ndarray, seeds: np.ndarray, rounds: int = 8) -> np.ndarray:
    """(row, column, height, width) of a box of large sum of each map of `gain` (k, h, w), grown from
    its seed cell (`seeds`: k x (row, column)), all k in lockstep.

    The best run of columns for the box's rows, then the best run of rows for those columns, and again
    until the box holds: each step's sum is at least the last's, and on maps of a region and noise it
    finds the box an exhaustive search finds (within a point or two of its overlap with pasted
    squares) in a third of the time. Each running sum is a difference of two rows (or columns) of
    the map's 2-D prefix sums; a map whose box holds keeps it while the others go on."""
    k, h, w = gain.shape
    prefix = np.zeros((k, h + 1, w + 1))
    np.cumsum(np.cumsum(gain, axis=1), axis=2, out=prefix[:, 1:, 1:])
    at, down, across = np.arange(k), np.arange(h + 1), np.arange(w + 1)
    r0, c0 = seeds[:, 0], seeds[:, 1]
    r1, c1 = r0 + 1, c0 + 1
    for _ in range(rounds):
        nc0, nc1 = _best_runs(prefix[at, r1, :] - prefix[at, r0, :], at, across)
        nr0, nr1 = _best_runs(prefix[at, :, nc1] - prefix[at, :, nc0], at, down)
        if (nr0 == r0).all() and (nr1 == r1).all() and (nc0 == c0).all() and (nc1 == c1).all():
            break
        r0, r1, c0, c1 = nr0, nr1, nc0, nc1  # one that held computes the same box again
    return np.stack([r0, c0, r1 - r0, c1 - c0], axis=1)


def best_box(gain: np.ndarray, seed: tuple[int, int], rounds: int = 8) -> tuple[int, int, int, int]:
    """best_boxes for one map (h, w)."""
    r, c, rh, cw = best_boxes(gain[None], np.array([seed]), rounds)[0].tolist()
    return r, c, rh, cw


def anomaly_map(residual: np.ndarray, cell: int, image_shape: tuple[int, ...]) -> dict[str, object]:
    """An alert's `anomaly_map`, as output_json takes it, from a record's residual (cells down, across)."""
    return anomaly_maps(residual[None], cell, image_shape)[0]


def anomaly_maps(residuals: np.ndarray, cell: int, image_shape: tuple[int, ...]) -> list[dict[str, object]]:
    """anomaly_map of each of a batch's alerts (residuals: k x cells down x across), in one go: the
    array work is done once for all of them."""
    k, h, w = residuals.shape
    if not np.isfinite(residuals).all():
        residuals = np.nan_to_num(residuals, nan=0.0, posinf=1.0, neginf=-1.0)
    error = np.abs(residuals)
    flat = error.reshape(k, -1)
    top = flat.max(axis=1)
    # The strongest single departure names the direction: by mass, a model that draws a stroke where
    # there is none would often outweigh a pasted patch it half reconstructs.
    peak = flat.argmax(axis=1)
    brighter = residuals.reshape(k, -1)[np.arange(k), peak] >= 0
    signed = np.where(brighter[:, None, None], residuals, -residuals)
    evened = np.sqrt(np.maximum(signed, 0.0), dtype=np.float64)
    boxes = best_boxes(evened - REGION_LEVEL * np.sqrt(top.astype(np.float64))[:, None, None],
                       np.stack(np.divmod(peak, w), axis=1))  # fmt: skip
    totals = flat.sum(axis=1, dtype=np.float64).tolist()
    with np.errstate(divide="ignore"):
        factor = np.where(top > 0, 255.0 / top, 0.0).astype(error.dtype)
    scaled = (error * factor[:, None, None] + 0.5).astype(np.uint8)
    out = []
    for j, ((r, c, rh, cw), largest, light, total) in enumerate(
        zip(boxes.tolist(), top.tolist(), brighter.tolist(), totals, strict=True)
    ):
        inside = float(error[j, r : r + rh, c : c + cw].sum(dtype=np.float64))
        y, x = r * cell, c * cell
        out.append({
            "height": h,
            "width": w,
            "cell": cell,
            "pixels": base64.b64encode(scaled[j].tobytes()).decode(),
            "max_error": largest,
            "direction": "brighter" if light else "darker",
            "region": {
                "x": x,
                "y": y,
                "width": min(cw * cell, image_shape[1] - x),
                "height": min(rh * cell, image_shape[0] - y),
                "error_share": min(1.0, round(inside / total, 4)) if total > 0 else 0.0,
            },
        })  # fmt: skip
    return out


def decode_map(published: dict[str, object]) -> np.ndarray:
    """A published map's cells as uint8 (height, width): for consumers, the demo and tests."""
    raw = base64.b64decode(str(published["pixels"]))
    return np.frombuffer(raw, np.uint8).reshape(int(published["height"]), int(published["width"]))
