"""The metric path under load: many series, one worker process, one broker.

  (f) memory per series: the worker's RSS growth while 10,000 series fill their windows,
      and the window store's own bytes per series (tracemalloc, in this process)
  (g) windows scored per second with 10,000 active (warm) series
  (h) point -> output latency (alert or score message, broker append time) at a steady rate

Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from kafka import TopicPartition

from bench.common import append_times, start_worker
from bench.figures import Figures
from schemas import ModelManifest, metric_message
from schemas.detect import bytes_per_row
from tooling.broker import free_port_block
from tooling.kafka import STORED_PLAIN, consumer, create_topic, produce, produce_at_rate
from tooling.process import metric_total, wait_ready
from worker.windows import SeriesWindows

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def series_values(n_series: int, steps: int, start: int = 0) -> np.ndarray:
    """[steps, n_series] of daily-seasonal noisy values: normal traffic, nothing for the model to flag."""
    rng = np.random.default_rng(start)
    t = np.arange(start, start + steps)[:, None]
    phase = np.random.default_rng(7).uniform(0, 2 * np.pi, n_series)[None, :]
    level = np.random.default_rng(8).uniform(50, 500, n_series)[None, :]
    noise = rng.normal(0, 0.03, (steps, n_series))
    return level * (1 + 0.3 * np.sin(2 * np.pi * t / 288 + phase) + noise)


def messages(n_series: int, steps: int, start: int, interval_s: float) -> tuple[list[bytes], list[bytes]]:
    values = series_values(n_series, steps, start)
    keys, out = [], []
    for step in range(steps):
        ts = T0 + timedelta(seconds=interval_s * (start + step))
        for s in range(n_series):
            k, v = metric_message(f"bench_{s:05d}", float(values[step, s]), ts=ts)
            keys.append(k)
            out.append(v)
    return keys, out


def store_bytes_per_series(manifest: ModelManifest, n_series: int) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = SeriesWindows(manifest.preprocessing, n_series)
    w, interval = manifest.preprocessing.window, manifest.preprocessing.interval_s
    for step in range(w):
        for s in range(n_series):
            store.push(f"bench_{s:05d}", interval * step, float(step), ("t", 0))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / n_series


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_count(port: int, outcome: str, target: float, proc, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if metric_total(port, "anomaly_worker_metric_points_total", f'outcome="{outcome}"') >= target:
            return time.perf_counter()
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}")
        time.sleep(0.25)
    raise TimeoutError(f"the worker did not reach {target:.0f} {outcome} points in {timeout_s} s")


def run(bootstrap: str, repo: Path, bundle: Path, n_series: int, scored_steps: int, rate: float,
        seconds: float, figures: Figures | None = None) -> list[str]:  # fmt: skip
    figures = figures if figures is not None else Figures()
    manifest = ModelManifest.model_validate_json((bundle / "manifest.json").read_bytes())
    w, interval = manifest.preprocessing.window, manifest.preprocessing.interval_s
    lines = [f"metric model {bundle} (W = {w}); {n_series:,} series; topic of 2 partitions"]
    per_store = store_bytes_per_series(manifest, n_series)

    topic = create_topic(bootstrap, f"bench-kpi-{uuid.uuid4().hex[:8]}", 2, STORED_PLAIN)
    append_time = {"message.timestamp.type": "LogAppendTime"}
    alerts = create_topic(bootstrap, f"bench-kpi-alerts-{uuid.uuid4().hex[:8]}", 1, append_time)
    scores = create_topic(bootstrap, f"bench-kpi-scores-{uuid.uuid4().hex[:8]}", 1, append_time)
    port = free_port_block(1)
    model = f"{manifest.name}:{manifest.version}"
    # the metric model alone, as a metrics worker runs (its GIL switch interval: worker/cli.py)
    proc = start_worker(bootstrap, repo, topic, alerts, port, scores_topic=scores, default_model=model,
                        models=manifest.name, max_series=n_series)  # fmt: skip
    try:
        wait_ready(port, proc)
        rss0 = rss_bytes(proc.pid)
        keys, values = messages(n_series, w - 1, 0, interval)
        produce(bootstrap, topic, values, keys, batch_size=256 * 1024)
        wait_count(port, "warming", len(values), proc)
        rss1 = rss_bytes(proc.pid)
        figures.add("f rss", "(f) worker RSS per metric series", (rss1 - rss0) / n_series, "bytes",
                    higher_is_better=False)  # fmt: skip
        lines.append(
            f"(f) memory per series: worker RSS +{(rss1 - rss0) / n_series:,.0f} bytes/series "
            f"({n_series:,} series x {w - 1} points); window store alone {per_store:,.0f} bytes/series "
            f"(ring {w * 8} bytes, detector state {bytes_per_row():,} bytes: scalars and two seasonal "
            "profiles)"
        )
        keys, values = messages(n_series, scored_steps, w - 1, interval)
        produce(bootstrap, topic, values, keys, batch_size=256 * 1024)
        wait_count(port, "scored", len(values), proc)
        # Every scored window has one output (alert or score message), stamped by the broker; the
        # warm-up points before had none. Timing from the stamps keeps /metrics scrapes (GIL time
        # in the worker) out of what is measured.
        stamps = sorted(append_times(bootstrap, alerts) + append_times(bootstrap, scores))
        windows_per_s = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000.0)
        figures.add("g", f"(g) windows scored/s, {n_series:,} warm series", windows_per_s, "windows/s")
        lines.append(
            f"(g) windows scored/s with {n_series:,} warm series: {windows_per_s:,.0f} "
            f"({len(stamps):,} windows)"
        )
        p50, p99, n = steady_latency(bootstrap, topic, [alerts, scores], n_series, w - 1 + scored_steps,
                                     interval, rate, seconds)  # fmt: skip
        figures.add("h p50", "(h) point -> output p50", p50, "ms", higher_is_better=False)
        figures.add("h p99", "(h) point -> output p99", p99, "ms", higher_is_better=False)
        lines.append(
            f"(h) point -> output (alert or score) at {rate:,.0f} points/s for {seconds:.0f} s "
            f"({n:,} outputs): p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(60)
    return lines


def steady_latency(bootstrap: str, topic: str, outputs: list[str], n_series: int, start: int,
                   interval: float, rate: float, seconds: float) -> tuple[float, float, int]:  # fmt: skip
    n = int(rate * seconds)
    steps = -(-n // n_series)
    keys, values = messages(n_series, steps, start, interval)
    stamps = produce_at_rate(bootstrap, topic, values[:n], rate, keys[:n])
    created = {(keys[i], i // n_series): stamp for i, stamp in enumerate(stamps)}
    reader = consumer(bootstrap)
    reader.assign([TopicPartition(t, 0) for t in outputs])
    for t in outputs:
        reader.seek_to_end(TopicPartition(t, 0))
    # Outputs of the steady phase are the last n of the two topics: read back from their ends.
    for tp in reader.assignment():
        end = reader.position(tp)
        reader.seek(tp, max(0, end - n))
    lat: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(lat) < n:
        for batch in reader.poll(timeout_ms=500).values():
            for m in batch:
                out = json.loads(m.value)
                step = (
                    round(datetime.fromisoformat(out["ts"]).timestamp() / interval)
                    - round(T0.timestamp() / interval)
                    - start
                )
                key = (m.key, step)
                if key in created:
                    lat.append(m.timestamp - created[key])
    reader.close()
    arr = np.array(lat, dtype=float)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), len(arr)
