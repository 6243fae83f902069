"""The end-to-end demo: images and KPI series through a real Kafka and the worker, alerts as they arrive.

Trains the bundles if there are none (an MNIST VAE; a KPI window VAE on generated series),
starts `python -m worker` as its own process (as a deployment would) on two input topics,
streams test-set 1s and 4s (normal) and 5s (anomalies) plus a few malformed records, then
the last days of the KPI series with their labelled anomalies; prints the alerts as they
arrive and a summary per kind against the labels. Between the two, a hot swap: a new version
of the image model is placed in the repository while records stream, the outputs switch to
it, and removing it again brings the old version back.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
from kafka.errors import KafkaError, NoBrokersAvailable
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from demo import DEMO_SETTINGS, kpi
from demo.bundles import REPO, Bundle, absolute, newest_bundle
from schemas import image_message
from schemas.repository import copy_as_version, next_version_folder
from schemas.settings import SettingsError, load_settings
from tooling.kafka import consumer, create_topics, produce_at_rate
from tooling.process import metric_total, start_worker_process, wait_ready
from training.images.mnist import BUNDLED_DIR, load_split
from worker.settings import WorkerSettings

SHOWN_ALERTS = 20


class StreamDemoSettings(BaseSettings):
    model_config = SettingsConfigDict(cli_prog_name="python -m demo", **DEMO_SETTINGS)

    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers (host:port,...)")
    model_repository: Path = Field(REPO / "models", description="where bundles live; one is trained if empty")
    model_name: str = Field(
        "mnist-vae",
        description="model to use: its newest version (trained into <repository>/<name>/1 if none)",
    )
    data_dir: Path = Field(BUNDLED_DIR, description="folder with the four MNIST IDX .gz files")
    normals: int = Field(800, ge=0, le=2117, description="test-set 1s and 4s to stream")
    anomalies: int = Field(200, ge=0, le=892, description="test-set 5s to stream")
    rate: float = Field(500.0, gt=0, description="records per second")
    metrics_port: int = Field(9108, ge=1, le=65535, description="the worker's /metrics port")
    kpi: bool = Field(True, description="also stream KPI series (--no-kpi: images only)")
    kpi_model_name: str = Field(
        "kpi-vae", description="KPI model: its newest version (trained into <repository>/<name>/1 if none)"
    )
    kpi_data_dir: Path = Field(
        REPO / ".demo" / "kpi-nonstationary",
        description="where the generated KPI series (and the streamed part) go",
    )
    kpi_series: int = Field(20, ge=1, description="generated KPI series (when a bundle is trained)")
    kpi_days: int = Field(28, ge=7, description="days per generated series (when a bundle is trained)")
    kpi_seed: int = Field(11, description="seed of the generated series")
    kpi_stream_days: float = Field(3.0, gt=0, description="last days of each series to stream")
    kpi_rate: float = Field(3000.0, gt=0, description="KPI points per second")
    figures_dir: Path = Field(REPO / ".demo", description="where the demo writes its pictures (PNG)")
    swap_records: int = Field(
        2000,
        ge=0,
        le=2117,
        description="image records streamed while a new model version goes live (0: no hot-swap step)",
    )

    # Relative paths given by flag or variable are from the current directory, resolved here once, so the
    # checks in this process and the training / worker subprocesses (run in REPO) see the same folders.
    absolute_paths = field_validator("model_repository", "data_dir", "kpi_data_dir", "figures_dir")(absolute)



def malformed_messages() -> list[bytes]:
    """Records the worker must dead-letter, each with its reason: truncated JSON, pixels of the wrong
    size, a NaN value."""
    pixels = base64.b64encode(bytes(100)).decode()
    return [
        b'{"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": "AAAA',  # truncated
        f'{{"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": "{pixels}"}}'.encode(),
        b'{"kind": "metric", "series": "api.latency_p99", "value": NaN}',
    ]

def ensure_bundle(s: StreamDemoSettings) -> Bundle:
    """The newest bundle of --model-name (what the worker serves as that name), trained if there is none."""
    found = newest_bundle(s.model_repository, s.model_name)
    if found is None:
        print(f"no bundle in {s.model_repository / s.model_name}: training one (about a minute on 2 cores)")
        out = s.model_repository / s.model_name / "1"
        subprocess.run(
            [sys.executable, "-m", "training", "train", "--data-dir", str(s.data_dir), "--out", str(out)],
            cwd=REPO,
            check=True,
        )
        found = newest_bundle(s.model_repository, s.model_name)
        if found is None:
            raise RuntimeError(f"training wrote no bundle into {out}")
    print(f"using the bundle in {found.folder} ({found.key})")
    return found


def make_topics(s: StreamDemoSettings, run: str) -> dict[str, str]:
    topics = {
        "input": f"demo.images-{run}",
        "metrics": f"demo.metrics-{run}",
        "alerts": f"demo.alerts-{run}",
        "dead": f"demo.dead-letters-{run}",
        "scores": f"demo.scores-{run}",
    }
    create_topics(s.bootstrap_servers, {t: 2 if k in ("input", "metrics") else 1 for k, t in topics.items()})
    return topics


def start_worker(
    s: StreamDemoSettings, topics: dict[str, str], run: str, image_model: str
) -> subprocess.Popen:
    settings = WorkerSettings(
        bootstrap_servers=s.bootstrap_servers,
        input_topics=f"{topics['input']},{topics['metrics']}",
        alerts_topic=topics["alerts"],
        dead_letter_topic=topics["dead"],
        scores_topic=topics["scores"],
        group_id=f"demo-{run}",
        model_repository=s.model_repository,
        default_model=image_model,  # for the malformed records, which name no model
        model_poll_interval_s=1.0,  # the hot-swap step: a new version goes live within seconds
        metrics_port=s.metrics_port,
        log_level="WARNING",
    )
    return start_worker_process(settings)


def build_stream(s: StreamDemoSettings, model: str) -> tuple[list[bytes], dict[str, int]]:
    """Messages in a fixed shuffled order, each naming `model` ('name:version'), and the digit behind each
    record id."""
    test = load_split("test", s.data_dir)
    normal_idx = np.flatnonzero(np.isin(test.labels, (1, 4)))[: s.normals]
    five_idx = np.flatnonzero(test.labels == 5)[: s.anomalies]
    order = np.random.default_rng(0).permutation(np.concatenate([normal_idx, five_idx]))
    digits = {f"mnist-test/{i}": int(test.labels[i]) for i in order}
    messages = [
        image_message(test.images[i], id=f"mnist-test/{i}", source="mnist-demo", model=model) for i in order
    ]
    for k, bad in enumerate(malformed_messages()):  # spread the malformed ones through the stream
        messages.insert((k + 1) * len(messages) // (len(malformed_messages()) + 1), bad)
    return messages, digits


class Outputs:
    """Reads alerts, scores and dead letters as they arrive; prints the alerts."""

    def __init__(self, s: StreamDemoSettings, topics: dict[str, str], digits: dict[str, int]) -> None:
        self.topics, self.digits = topics, digits
        self.alerts: list[dict] = []
        self.metric_alerts: list[dict] = []
        self.scores: list[dict] = []
        self.dead: list[dict] = []
        self.received_at: dict[str, float] = {}
        self._stop = threading.Event()
        self.consumer = consumer(s.bootstrap_servers, topics["alerts"], topics["scores"], topics["dead"],
                                 group_id=f"demo-reader-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def count(self) -> int:
        return len(self.alerts) + len(self.metric_alerts) + len(self.scores) + len(self.dead)

    def _run(self) -> None:
        while not self._stop.is_set():
            for batch in self.consumer.poll(timeout_ms=200).values():
                for m in batch:
                    self._take(m.topic, json.loads(m.value))

    def _take(self, topic: str, out: dict) -> None:
        if topic == self.topics["dead"]:
            self.dead.append(out)
            print(f"  dead letter  {out['reason']:<15} {out['error'][:70]}")
            return
        self.received_at.setdefault(out["record_id"], time.time())
        if topic == self.topics["scores"]:
            self.scores.append(out)
            return
        if out.get("kind") == "metric":
            self.metric_alerts.append(out)
            if len(self.metric_alerts) <= SHOWN_ALERTS:
                band = (f"  band {out['lower']:.1f} .. {out['upper']:.1f}" if out.get("lower") is not None
                        else "")  # fmt: skip
                print(
                    f"  ALERT  {out['series_key']:<12} {out['ts'][:16]}  value {out['value']:8.1f}  "
                    f"score {out['score']:6.2f} >= {out['threshold']:.2f}  by {out.get('detector', '?'):<5}  "
                    f"severity {out['severity']:.2f}{band}"
                )
            elif len(self.metric_alerts) == SHOWN_ALERTS + 1:
                print("  ... (more KPI alerts; the summary counts them all)")
            return
        self.alerts.append(out)
        if len(self.alerts) <= SHOWN_ALERTS:
            digit = self.digits.get(out["record_id"], "?")
            print(
                f"  ALERT  {out['record_id']:<16} (a {digit})  score {out['score']:7.1f} >= "
                f"{out['threshold']:.1f}  severity {out['severity']:.2f}"
            )
        elif len(self.alerts) == SHOWN_ALERTS + 1:
            print("  ... (more alerts; the summary counts them all)")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.consumer.close()


def stream(
    s: StreamDemoSettings, topic: str, messages: list[bytes], rate: float, keys: list[bytes] | None = None
) -> dict[str, float]:
    """Send at `rate` records/s; returns when each record id was sent (for latency)."""
    created_ms = produce_at_rate(s.bootstrap_servers, topic, messages, rate, keys, acks="all")
    sent_at: dict[str, float] = {}
    for raw, ms in zip(messages, created_ms, strict=True):
        with contextlib.suppress(ValueError, KeyError):  # the malformed ones have no id
            sent_at[json.loads(raw)["id"]] = ms / 1000
    return sent_at


def summary(out: Outputs, digits: dict[str, int], sent_at: dict[str, float], n_sent: int) -> None:
    alerted = {a["record_id"] for a in out.alerts}
    fives = [r for r, d in digits.items() if d == 5]
    normals = [r for r, d in digits.items() if d != 5]
    recall = np.mean([r in alerted for r in fives]) if fives else float("nan")
    false_alarms = np.mean([r in alerted for r in normals]) if normals else float("nan")
    lat = np.array([out.received_at[r] - sent_at[r] for r in out.received_at if r in sent_at]) * 1000
    reasons = Counter(d["reason"] for d in out.dead)
    print("\nimage summary")
    print(
        f"  records sent        {n_sent} ({len(fives)} fives, {len(normals)} ones and fours, "
        f"{n_sent - len(digits)} malformed)"
    )
    print(
        f"  outcomes            {len(out.alerts)} alerts, {len(out.scores)} scored normal, "
        f"{len(out.dead)} dead letters"
    )
    print(f"  recall on 5s        {recall:.3f}")
    print(f"  false alarms (1/4)  {false_alarms:.3f}")
    print(f"  dead letters        {', '.join(f'{r}: {n}' for r, n in reasons.items()) or 'none'}")
    if len(lat):
        print(
            f"  produce -> output   p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms"
        )


def explain_one(s: StreamDemoSettings, bundle: Bundle, out: Outputs) -> None:
    """The most anomalous image alert with its anomaly map: image, reconstruction and map in the terminal
    and as a PNG."""
    from demo import explain

    mapped = [a for a in out.alerts if a.get("anomaly_map") and a["record_id"].startswith("mnist-test/")]
    if not mapped:
        print(f"\nno image alert carries an anomaly map ({bundle.folder} was exported before maps existed: "
              "'make train' exports one that has them)")  # fmt: skip
        return
    alert = max(mapped, key=lambda a: a["score"])
    image = load_split("test", s.data_dir).images[int(alert["record_id"].split("/")[1])]
    recon = explain.reconstruction(bundle.folder, image)
    print(f"\nwhy {alert['record_id']} alerted (score {alert['score']:.1f}, the highest): its anomaly map")
    for line in explain.terminal_lines(image, recon, alert["anomaly_map"]):
        print(line)
    title = f"{alert['record_id']}, score {alert['score']:.1f}"
    png = explain.write_png(image, recon, alert["anomaly_map"], title, s.figures_dir / "image-alert.png")
    print(f"  the same as a picture: {png}")


def stream_kpi(s: StreamDemoSettings, bundle: Bundle, topics: dict[str, str], out: Outputs) -> int:
    """Stream the KPI points, wait for their outputs, print the KPI summary; returns outputs expected."""
    from training.kpi.offline import predict_alerts

    streamed_csv = s.kpi_data_dir / "streamed.csv"
    points, window = kpi.stream_points(bundle.folder, s.kpi_stream_days, streamed_csv)
    keyed = kpi.messages(points, bundle.key)
    n_series = len({p.series for p in points})
    expected = kpi.scored_points(bundle.folder, points)  # points that fill a window have no output
    print(f"\nstreaming {len(points)} KPI points ({n_series} series) at {s.kpi_rate:.0f}/s:")
    before = out.count()
    stream(s, topics["metrics"], [v for _, v in keyed], s.kpi_rate, keys=[k for k, _ in keyed])
    deadline = time.monotonic() + 120
    while out.count() - before < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    offline = {(a.series, a.timestamp_s) for a in predict_alerts(bundle.folder, streamed_csv)}
    kpi.summary(points, window, out.metric_alerts, offline)
    explain_kpi(s, out)
    return expected


def explain_kpi(s: StreamDemoSettings, out: Outputs) -> None:
    """The most severe KPI alert's series with its expected value and band, as a PNG."""
    from demo import explain

    banded = [a for a in out.metric_alerts if a.get("lower") is not None]
    if not banded:
        return
    alert = max(banded, key=lambda a: a["severity"])
    series = [o for o in out.scores + out.metric_alerts if o.get("series_key") == alert["series_key"]]
    png = explain.write_band_png(series, alert, s.figures_dir / "kpi-alert.png")
    band = f"{alert['lower']:.1f} .. {alert['upper']:.1f}"
    print(f"\nthe most severe KPI alert, {alert['series_key']} at {alert['ts'][:16]}: value "
          f"{alert['value']:.1f}, expected {alert['expected']:.1f}, band {band} (by {alert['detector']}); "
          f"the series with its band: {png}")  # fmt: skip
    if alert.get("evidence"):
        print(f"  why: {alert['evidence']['summary']}")
    if alert.get("reconstructed") is not None:  # bundles whose graph rebuilds the point
        print(f"  the model itself rebuilds {alert['reconstructed']:.1f} for the point from its window "
              "(its view, not what was expected: docs/kpi.md#the-band)")


def version_in_service(s: StreamDemoSettings, name: str) -> str | None:
    """anomaly_worker_model_version of `name` on the worker's /metrics (None: not served, or not known)."""
    version = metric_total(s.metrics_port, "anomaly_worker_model_version", f'model="{name}"')
    return str(int(version)) if version > 0 else None


def hot_swap(s: StreamDemoSettings, bundle: Bundle, topics: dict[str, str], out: Outputs) -> int:
    """Place a new version of the image model (a copy of the bundle, its manifest saying the next version)
    while records naming the model without a version stream; print which version scored which records;
    remove it again (a rollback). Returns the outputs expected."""
    name = bundle.manifest.name
    new = next_version_folder(bundle.folder.parent.parent, bundle.folder.parent.name)
    test = load_split("test", s.data_dir)
    normals = test.images[np.isin(test.labels, (1, 4))][: s.swap_records]
    messages = [
        image_message(img, id=f"swap/{i}", source="mnist-demo", model=name) for i, img in enumerate(normals)
    ]
    print(
        f"\nhot swap: streaming {len(messages)} records naming model {name} (no version) at {s.rate:.0f}/s;"
    )
    print(f"  version {new.name} (a copy of {bundle.manifest.version}) goes into {new.parent} a second in")
    sender = threading.Thread(target=stream, args=(s, topics["input"], messages, s.rate))
    sender.start()
    try:
        time.sleep(1.0)
        copy_as_version(bundle.folder, new.name)  # staged beside it and renamed: it appears whole
        sender.join()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            scored = [o for o in out.alerts + out.scores if o["record_id"].startswith("swap/")]
            if len(scored) >= len(messages):
                break
            time.sleep(0.2)
        for version in sorted({o["model_version"] for o in scored}, key=lambda v: (len(v), v)):
            ids = sorted(int(o["record_id"][5:]) for o in scored if o["model_version"] == version)
            print(f"  version {version:>3} scored {len(ids):5d} records (swap/{ids[0]} .. swap/{ids[-1]})")
        once = len({o["record_id"] for o in scored}) == len(scored) == len(messages)
        print(f"  outputs switched from version {bundle.manifest.version} to {new.name} without a restart; "
              f"{'each record was scored once' if once else 'NOT every record was scored once'}")  # fmt: skip
    finally:
        shutil.rmtree(new, ignore_errors=True)
    deadline = time.monotonic() + 30
    while version_in_service(s, name) != bundle.manifest.version and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"  removed {new}: version {version_in_service(s, name)} serves again (a rollback)")
    return len(messages)


def run(s: StreamDemoSettings) -> int:
    image_bundle = ensure_bundle(s)
    kpi_bundle = None
    if s.kpi:
        kpi_bundle = kpi.ensure_kpi_bundle(
            s.model_repository, s.kpi_model_name, s.kpi_data_dir, s.kpi_series, s.kpi_days, s.kpi_seed
        )
    run_id = uuid.uuid4().hex[:6]
    topics = make_topics(s, run_id)
    worker = start_worker(s, topics, run_id, image_bundle.manifest.name)
    try:
        wait_ready(s.metrics_port, worker)
        print(
            f"worker ready: metrics at http://localhost:{s.metrics_port}/metrics "
            f"(also /healthz, /readyz); topics {', '.join(topics.values())}\n"
        )
        messages, digits = build_stream(s, image_bundle.key)
        out = Outputs(s, topics, digits)
        print(f"streaming {len(messages)} image records at {s.rate:.0f}/s:")
        sent_at = stream(s, topics["input"], messages, s.rate)
        expected = len(messages)
        deadline = time.monotonic() + 60
        while out.count() < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        summary(out, digits, sent_at, len(messages))
        explain_one(s, image_bundle, out)
        if s.swap_records:
            expected += hot_swap(s, image_bundle, topics, out)
        if kpi_bundle is not None:
            expected += stream_kpi(s, kpi_bundle, topics, out)
        out.close()
        scraped = (
            urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=2).read().decode()
        )
        print("\nfrom /metrics:")
        for line in scraped.splitlines():
            if "_created" not in line and line.startswith(
                (
                    "anomaly_worker_records_",
                    "anomaly_worker_alerts_total",
                    "anomaly_worker_dead_letters_total",
                    "anomaly_worker_metric_points_total",
                    "anomaly_worker_series_",
                    "anomaly_worker_model_version",
                )
            ):
                print(f"  {line}")
        complete = out.count() >= expected
    finally:
        worker.terminate()  # SIGTERM: drain, flush, commit, leave the group
        code = worker.wait(60)
    print(f"\nworker stopped with exit code {code}; the broker keeps running ('make kafka-down' stops it)")
    if not complete:
        print("demo: not every record came back within 60 s", file=sys.stderr)
    return 0 if complete and code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    try:
        s = load_settings(StreamDemoSettings, argv)
    except SettingsError as exc:
        print(f"demo: {exc.message}", file=sys.stderr)
        return 2
    try:
        return run(s)
    except NoBrokersAvailable:
        print(
            f"demo: no Kafka broker answers at {s.bootstrap_servers}; start one with 'make kafka-up' "
            "or set --bootstrap-servers / DEMO_BOOTSTRAP_SERVERS",
            file=sys.stderr,
        )
        return 1
    except (KafkaError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
