"""The KPI half of the demo: labelled synthetic series through the worker, checked against the labels
and against what the offline evaluation predicts.

The bundle is trained (if there is none) on a generated non-stationary set (levels that step
and drift, noise that changes, seasonality that shifts, gaps, counts near zero); the stream is
the last days of the same series (the part the training split keeps for testing). A series'
first W - 1 streamed points fill its window and the detector's next `warmup` scores only
learn; after that every point is scored, and the worker's alerts are compared with
`training.kpi.offline.predict_alerts` on the same points.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from demo.bundles import REPO, Bundle, newest_bundle
from schemas import ModelManifest, metric_message


@dataclass
class KpiPoint:
    series: str
    ts: str
    value: float
    label: int
    kind: str

    @property
    def seconds(self) -> float:
        return datetime.fromisoformat(self.ts.replace("Z", "+00:00")).timestamp()


def ensure_kpi_bundle(
    repository: Path, name: str, data_dir: Path, series: int, days: int, seed: int
) -> Bundle:
    """The newest bundle of `name` (the one the worker serves as `name`), trained on generated series first
    if there is none; returns it. Paths are absolute (the subprocesses run in REPO)."""
    found = newest_bundle(repository, name)
    if found is not None:
        print(f"using the KPI bundle in {found.folder} ({found.key})")
        return found
    csv_path = data_dir / "kpi.csv"
    if not csv_path.exists():
        subprocess.run(
            [sys.executable, "-m", "training", "synth", "--out", str(data_dir), "--series", str(series),
             "--days", str(days), "--seed", str(seed), "--profile", "nonstationary"],
            cwd=REPO, check=True,
        )  # fmt: skip
    out = repository / name / "1"
    print(f"no KPI bundle in {repository / name}: training one on {csv_path}")
    subprocess.run(
        [sys.executable, "-m", "training", "train", "--dataset", "csv", "--data", str(csv_path), "--out",
         str(out)],
        cwd=REPO, check=True,
    )  # fmt: skip
    found = newest_bundle(repository, name)
    if found is None:
        raise RuntimeError(f"training wrote no KPI bundle into {out}")
    return found


def read_points(path: Path) -> list[KpiPoint]:
    with path.open(newline="") as fh:
        return [
            KpiPoint(
                r["series"], r["timestamp"], float(r["value"]), int(r.get("label") or 0), r.get("kind", "")
            )
            for r in csv.DictReader(fh)
        ]


def stream_points(bundle: Path, days: float, out_csv: Path) -> tuple[list[KpiPoint], int]:
    """The last `days` of every series the bundle was trained on, in time order across series.

    Also writes them to `out_csv` (for the offline prediction) and returns W.
    """
    manifest = ModelManifest.model_validate_json((bundle / "manifest.json").read_bytes())
    source = Path(str(manifest.training["data"]))
    if not source.exists():
        raise RuntimeError(f"the KPI bundle's training data {source} is gone; delete {bundle} to retrain")
    points = read_points(source)
    end = max(p.seconds for p in points)
    chosen = [p for p in points if p.seconds > end - days * 86400]
    chosen.sort(key=lambda p: (p.seconds, p.series))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["series", "timestamp", "value", "label", "kind"])
        for p in chosen:
            w.writerow([p.series, p.ts, repr(p.value), p.label, p.kind])
    return chosen, manifest.preprocessing.window


def scored_points(bundle: Path, points: list[KpiPoint]) -> int:
    """How many of the points the worker scores (one output each): on each series' grid, the real points
    with W points of their segment behind them (schemas.timeseries, as the worker places them)."""
    from schemas.timeseries import scoreable, to_grid

    manifest = ModelManifest.model_validate_json((bundle / "manifest.json").read_bytes())
    pre = manifest.preprocessing
    by_series: dict[str, list[KpiPoint]] = {}
    for p in points:
        by_series.setdefault(p.series, []).append(p)
    total = 0
    for key, pts in by_series.items():
        stats = pre.series.get(key)
        interval = stats.interval_s if stats else pre.interval_s
        grid = to_grid(np.array([p.seconds for p in pts]), np.array([p.value for p in pts]), interval,
                       pre.reset_gap)  # fmt: skip
        total += len(scoreable(grid, pre.window))
    return total


def messages(points: list[KpiPoint], model: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of each point, naming `model` ('name:version'): with a second metric model in the
    repository, a point that names none has no default model in the worker and is dead-lettered."""
    return [metric_message(p.series, p.value, ts=p.ts, model=model) for p in points]


def summary(
    points: list[KpiPoint], window: int, alerts: list[dict], expected: set[tuple[str, float]]
) -> None:
    """Point-adjusted recall per anomaly kind, false alarms per series-day, agreement with offline."""
    by_series: dict[str, list[KpiPoint]] = {}
    for p in points:
        by_series.setdefault(p.series, []).append(p)
    alerted = {(a["series_key"], datetime.fromisoformat(a["ts"].replace("Z", "+00:00")).timestamp())
               for a in alerts}  # fmt: skip
    found, total, false_alarms, scored_days = Counter(), Counter(), 0, 0.0
    for key, pts in by_series.items():
        scored = pts[window - 1 :]
        if not scored:
            continue
        scored_days += (scored[-1].seconds - scored[0].seconds) / 86400
        hit = np.array([(key, p.seconds) in alerted for p in scored])
        labels = np.array([p.label for p in scored])
        false_alarms += int((hit & (labels == 0)).sum())
        start = None
        for i, lab in enumerate([*labels.tolist(), 0]):
            if lab and start is None:
                start = i
            elif not lab and start is not None:
                kind = scored[start].kind or "anomaly"
                total[kind] += 1
                found[kind] += bool(hit[start:i].any())
                start = None
    print("\nKPI summary (each series' first W - 1 streamed points fill its window, the next ones warm up)")
    print(f"  series             {len(by_series)}, W = {window}, {len(points)} points streamed")
    print(f"  alerts             {len(alerts)}")
    for kind in sorted(total):
        print(f"  {kind:<18} {found[kind]}/{total[kind]} labelled windows alerted")
    if scored_days:
        print(f"  false alarms       {false_alarms} ({false_alarms / scored_days:.2f} per series-day)")
    worker = {(k, round(t)) for k, t in alerted}
    offline = {(k, round(t)) for k, t in expected}
    agree = (
        "the same points"
        if worker == offline
        else (
            f"{len(worker & offline)} shared, {len(worker - offline)} only streamed, "
            f"{len(offline - worker)} only offline"
        )
    )
    print(f"  vs offline         {len(offline)} alerts predicted by training.kpi.offline: {agree}")
