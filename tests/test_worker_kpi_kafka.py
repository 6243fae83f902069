"""A trained KPI bundle in the worker on the real broker: labelled anomalies alerted, a normal stretch
not, and the streamed alerts exactly the ones the offline evaluation predicts."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import AnomalyAlert, ScoreMessage, metric_message
from tests.kpi_helpers import train_tiny_kpi_bundle
from tests.worker_harness import WorkerThread, produce, read_json, worker_settings
from training.kpi.offline import predict_alerts
from training.kpi.synth import SynthSeries, generate_series, write_long_csv

pytestmark = pytest.mark.integration

PER_DAY = 288  # 5-minute points
TRAIN_DAYS, STREAM_DAYS = 8, 2
SPIKE_AT, SHIFT_AT, SHIFT_LEN = 250, 420, 48  # positions in the streamed part
NORMAL = slice(130, 240)  # a stretch of the streamed part with nothing injected


def split(series: SynthSeries, start: int, end: int | None = None) -> SynthSeries:
    return SynthSeries(series.name, series.timestamps[start:end], series.values[start:end].copy(),
                       series.labels[start:end].copy(), series.kinds[start:end])  # fmt: skip


@pytest.fixture(scope="module")
def kpi_case(tmp_path_factory):
    """Two normal series (no random anomalies); the model trains on their first 8 days; the stream
    is their next 2 days with a spike and a level shift injected into the first series.

    Alerting at a tail probability of 10^-3.4 rather than the default 10^-3, so a normal stretch of
    a hundred points is expected to stay silent."""
    folder = tmp_path_factory.mktemp("kpi")
    rng = np.random.default_rng(31)
    full = [
        generate_series(f"svc_{i}", TRAIN_DAYS + STREAM_DAYS, rng, anomalies_per_week=0) for i in range(2)
    ]
    train_csv = folder / "train.csv"
    write_long_csv([split(s, 0, TRAIN_DAYS * PER_DAY) for s in full], train_csv)
    bundle = train_tiny_kpi_bundle(folder / "models" / "kpi-test" / "1", train_csv, window=32, epochs=8,
                                   split="60,30,10", alert_threshold=3.4)  # fmt: skip
    stream = [split(s, TRAIN_DAYS * PER_DAY) for s in full]
    target = stream[0]
    sd = float(np.std(np.diff(target.values))) / np.sqrt(2)
    level = float(np.median(target.values))
    for start, end, kind in (
        (SPIKE_AT, SPIKE_AT + 1, "spike"),
        (SHIFT_AT, SHIFT_AT + SHIFT_LEN, "level_shift"),
    ):
        if kind == "spike":
            target.values[start:end] += 12 * sd
        else:
            target.values[start:end] += 0.3 * level
        target.labels[start:end] = 1
    stream_csv = folder / "stream.csv"
    write_long_csv(stream, stream_csv)
    return bundle, stream, stream_csv


def scored(w: WorkerThread) -> float:
    return w.sample("anomaly_worker_metric_points_total", model="kpi-test:1", outcome="scored")


def metric_families(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return {f.name: f for f in text_string_to_metric_families(reply.read().decode())}


def series_gauge(families: dict, name: str) -> dict[str, float]:
    """An --export-series family's samples by series (empty before the first export)."""
    family = families.get(f"anomaly_worker_series_{name}")
    return {m.labels["series"]: m.value for m in (family.samples if family else [])
            if m.name.endswith(name) or m.name.endswith(name + "_total")}  # fmt: skip


def test_a_trained_kpi_model_alerts_as_the_offline_evaluation_predicts(
    kafka_bootstrap, worker_topics, kpi_case
):
    bundle, stream, stream_csv = kpi_case
    topics = worker_topics("kpi")
    keys, values = [], []
    for i in range(len(stream[0].values)):  # in time order, the two series interleaved
        for s in stream:
            k, v = metric_message(s.name, float(s.values[i]), ts=s.timestamps[i])
            keys.append(k)
            values.append(v)
    expected = predict_alerts(bundle.folder, stream_csv)
    exported = stream[0].name
    settings = worker_settings(kafka_bootstrap, bundle.folder.parent.parent, topics, export_series=exported)
    with WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], values, keys)
        n_scored = sum(len(s.values) - 31 for s in stream)
        # Until every point is scored and the exported gauges (brought up to date after a poll) show
        # the series' last one: a loaded machine takes longer, and no answer changes with it
        last_value = {exported: float(stream[0].values[-1])}
        deadline = time.monotonic() + 300
        families = metric_families(w.port)
        while time.monotonic() < deadline and (
            scored(w) < n_scored or series_gauge(families, "value") != last_value
        ):
            time.sleep(0.2)
            families = metric_families(w.port)
        assert scored(w) == n_scored, f"{scored(w):.0f} of {n_scored} points scored in 300 s"
        w.stop()
    alerts = [AnomalyAlert.model_validate(a) for a in read_json(kafka_bootstrap, topics["alerts"])]
    published_scores = read_json(kafka_bootstrap, topics["scores"])
    scores = [ScoreMessage.model_validate(m) for m in published_scores]

    # Past warm-up the outputs say what was expected and the normal band; the spike is outside it.
    banded = [o for o in alerts + scores if o.lower is not None]
    assert len(banded) >= 0.9 * len([o for o in alerts + scores if o.score > 0])
    assert all(o.lower <= o.expected <= o.upper for o in banded)
    [spike] = [a for a in alerts if a.series_key == stream[0].name and a.ts == stream[0].timestamps[SPIKE_AT]]
    assert not spike.lower <= spike.value <= spike.upper
    assert np.mean([m.lower <= m.value <= m.upper for m in scores if m.lower is not None]) >= 0.95
    # The VAE's own value for each point, from the graph's second output, on scores and alerts alike.
    assert all(o.reconstructed is not None and np.isfinite(o.reconstructed) for o in alerts + scores)
    # Every alert says why in the firing part's numbers; a score message never carries them.
    assert all(a.evidence and a.evidence.part == a.detector and a.evidence.summary for a in alerts)
    assert spike.evidence.reference is not None and spike.evidence.scale > 0
    assert published_scores and all("evidence" not in m for m in published_scores)

    # --export-series: the chosen series' last point and band on /metrics, its alerts counted; no other.
    def gauge(name: str) -> dict[str, float]:
        return series_gauge(families, name)

    last = max((o for o in alerts + scores if o.series_key == exported), key=lambda o: o.ts)
    assert gauge("value") == {exported: last.value}
    assert gauge("lower") == {exported: last.lower} and gauge("upper") == {exported: last.upper}
    assert gauge("expected") == {exported: last.expected}
    alerted = len([a for a in alerts if a.series_key == exported])
    assert alerted and gauge("alerts") == {exported: alerted}

    streamed = sorted((a.series_key, a.ts.astimezone(UTC).timestamp()) for a in alerts)
    assert streamed == sorted((e.series, e.timestamp_s) for e in expected)

    target = stream[0]
    alerted = {a.ts for a in alerts if a.series_key == target.name}
    assert target.timestamps[SPIKE_AT] in alerted
    assert alerted & set(target.timestamps[SHIFT_AT : SHIFT_AT + SHIFT_LEN])
    assert not alerted & set(target.timestamps[NORMAL])
    # Two normal days of the other series (544 scored points, the first 50 of them warming up): more
    # than 3 alerts (0.55 %) would mean its adaptive thresholds do not hold on new data.
    assert len([a for a in alerts if a.series_key == stream[1].name]) <= 3
    assert all(a.value is not None and a.window == 32 and a.labels == {} for a in alerts)
