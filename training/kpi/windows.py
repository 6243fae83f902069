"""Series on their grid, split by time; the windows the model sees.

Everything the worker also does (grid, gap fill, segments, which windows are scored) comes
from `schemas.timeseries`, and the scaling of each window by its own past from
`schemas.detect`, so the two sides cannot drift apart. What is only training's lives here:
the time split, the labels on the grid, the training windows with their masks of filled points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.detect import WindowFeatures, window_features
from schemas.timeseries import Grid, detect_interval, scoreable, slot_of, to_grid, windows_ending_at
from training.kpi.load import ALIASES, LoadedData, RawSeries

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class WindowConfig:
    window: int
    reset_gap: int
    clip: float
    train_fraction: float
    val_fraction: float

    def min_points(self) -> int:
        """Grid points a series needs: its training part must hold at least two windows."""
        return int(np.ceil(2 * self.window / self.train_fraction))


@dataclass
class SeriesData:
    """One series ready for the model: grid, labels on the grid, split bounds."""

    key: str
    interval_s: float
    grid: Grid
    times: np.ndarray  # float64 seconds: the real point's own timestamp, or slot * interval if filled
    labels: np.ndarray  # int8 per grid slot; 0 on filled slots (they are not evaluated)
    kinds: np.ndarray  # str per grid slot ("" for normal), or "anomaly" when the data has no kinds
    train_end: int  # grid index where the validation part starts
    val_end: int  # grid index where the test part starts

    def part_of(self, idx: np.ndarray) -> np.ndarray:
        """0 (train), 1 (val) or 2 (test) for grid indices."""
        return (np.asarray(idx) >= self.train_end).astype(np.int8) + (np.asarray(idx) >= self.val_end)

    @property
    def n_real(self) -> int:
        return int((~self.grid.missing).sum())


def first_slot_positions(
    timestamps_s: np.ndarray, interval_s: float, grid: Grid
) -> tuple[np.ndarray, np.ndarray]:
    """(grid index, original row) of each point to_grid kept: the first point seen in its slot."""
    slots = slot_of(timestamps_s, interval_s)
    order = np.argsort(slots, kind="stable")  # the same order to_grid keeps
    sorted_slots = slots[order]
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = sorted_slots[1:] != sorted_slots[:-1]
    return sorted_slots[keep] - grid.slots[0], order[keep]


def prepare_series(raw: RawSeries, cfg: WindowConfig, interval_s: float | None = None) -> SeriesData:
    """Grid the whole series and split it by time."""
    interval = interval_s if interval_s is not None else detect_interval(raw.timestamps)
    grid = to_grid(raw.timestamps, raw.values, interval, cfg.reset_gap)
    n = len(grid)
    train_end = round(n * cfg.train_fraction)
    val_end = round(n * (cfg.train_fraction + cfg.val_fraction))
    if grid.missing[:train_end].all():
        raise ValueError(f"series {raw.key!r}: no real points in its training part")
    pos, rows = first_slot_positions(raw.timestamps, interval, grid)
    times = (grid.slots * interval).astype(np.float64)
    times[pos] = raw.timestamps[rows]
    labels = np.zeros(n, dtype=np.int8)
    kinds = np.full(n, "", dtype=object)
    if raw.labels is not None:
        labels[pos] = raw.labels[rows]
        if raw.kinds is not None:
            kinds[pos] = np.asarray(raw.kinds, dtype=object)[rows]
        unnamed = (labels == 1) & (kinds == "")
        kinds[unnamed] = "anomaly"
        kinds[labels == 0] = ""
    return SeriesData(
        key=raw.key,
        interval_s=interval,
        grid=grid,
        times=times,
        labels=labels,
        kinds=kinds,
        train_end=train_end,
        val_end=val_end,
    )


# Two points in one grid slot: the second is dropped. A few are jitter; many mean the data is not what
# the loader took it for (several series read as one, a grid coarser than the data).
MAX_DUPLICATE_FRACTION = 0.05


def prepare_all(
    data: LoadedData, cfg: WindowConfig, log=print, max_duplicates: float = MAX_DUPLICATE_FRACTION
) -> list[SeriesData]:
    """Every series long enough for the split; too-short ones are skipped with a printed warning.
    Columns the loader did not read, and points dropped as a second point in a grid slot, are said;
    ValueError if more than `max_duplicates` of the points were dropped, or if no series is left."""
    read = ", ".join(f"{role} ({names[0]})" for role, names in ALIASES.items())
    for path, names in data.unused_columns.items():
        log(f"warning: {path}: column(s) {', '.join(names)} not read (the loader reads {read}; "
            "the aliases of each are in docs/kpi.md)")  # fmt: skip
    out, skipped = [], []
    need = cfg.min_points()
    for raw in data.series.values():
        if np.unique(raw.timestamps).size < 2:
            skipped.append(f"{raw.key} ({raw.timestamps.size} point)")
            continue
        try:
            s = prepare_series(raw, cfg)
        except ValueError as exc:  # e.g. a stray timestamp: skip the series, say why
            skipped.append(f"{raw.key} ({exc})")
            continue
        ends = scoreable(s.grid, cfg.window)
        parts = s.part_of(ends)
        if len(s.grid) < need or not (parts == 1).any():
            skipped.append(f"{raw.key} ({len(s.grid)} grid points)")
            continue
        out.append(s)
    _check_duplicates(data, out, log, max_duplicates)
    if skipped:
        log(
            f"warning: skipped {len(skipped)} series too short for --window {cfg.window} and the split, "
            "or with timestamps far apart "
            f"(each needs >= {need} grid points, and scoreable windows in its validation part): "
            + ", ".join(skipped[:10])
            + (" ..." if len(skipped) > 10 else "")
        )
    if not out:
        raise ValueError(
            f"no series is long enough: each needs at least {need} points on its grid "
            f"(2 windows of {cfg.window} in the training part, {cfg.train_fraction:.0%} of it); "
            "use a smaller --window or more data"
        )
    return out


def most_common_interval(series: list[SeriesData]) -> float:
    values, counts = np.unique([s.interval_s for s in series], return_counts=True)
    return float(values[np.argmax(counts)])


def features(s: SeriesData, ends: np.ndarray, cfg: WindowConfig) -> WindowFeatures:
    """The windows ending at grid indices `ends`, scaled by their own past (schemas.detect), as the
    worker scales them."""
    return window_features(windows_ending_at(s.grid.values, ends, cfg.window), cfg.clip)


def training_windows(
    series: list[SeriesData], cfg: WindowConfig, part: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """(scaled windows, observed mask), both [N, W], ending in `part` and lying inside one segment.

    Filled points stay in the input (the worker feeds them too) but their mask is 0, so the
    loss does not teach the model to reconstruct the fill (Donut's M-ELBO). Labels are not used.
    """
    code = PARTS.index(part)
    window = cfg.window
    xs, ms = [], []
    for s in series:
        idx = np.flatnonzero(s.grid.run_length >= window)
        idx = idx[s.part_of(idx) == code]
        if idx.size == 0:
            continue
        xs.append(features(s, idx, cfg).z)
        ms.append(windows_ending_at(~s.grid.missing, idx, window))
    if not xs:
        return np.zeros((0, window), np.float32), np.zeros((0, window), bool)
    return np.concatenate(xs), np.concatenate(ms)


def _check_duplicates(data: LoadedData, series: list[SeriesData], log, max_fraction: float) -> None:
    """Say how many points were dropped as a second point in their grid slot; stop past `max_fraction`."""
    dropped = sum(s.grid.duplicates for s in series)
    if not dropped:
        return
    total = sum(data.series[s.key].values.size for s in series)
    worst = max(series, key=lambda s: s.grid.duplicates)
    said = (f"{dropped:,} of {total:,} points ({dropped / total:.1%}) were dropped as a second point in "
            f"their grid slot (most in series {worst.key!r}: {worst.grid.duplicates:,})")  # fmt: skip
    if dropped <= max_fraction * total:
        log(f"warning: {said}")
        return
    raise ValueError(
        f"{said}. That many usually means several series were read as one (a file without a series "
        "column is ONE series: name the column that tells them apart `series`, or one of its aliases), "
        "or timestamps finer than the series' grid. Check the columns the warnings above name; to "
        f"train anyway, raise --max-duplicate-percent (now {max_fraction:.0%})"
    )
