"""`make prom-check`: every alerting and recording rule and every dashboard query, evaluated by a real
Prometheus server scraping a running worker.

Starts a private broker, a worker serving an image model (trained for one epoch) and a metric model
(hand-built), streams images (some anomalous, some malformed) and metric points through it while
Prometheus (Debian's `prometheus` package, or any on PATH) scrapes it every second with the project's
deploy/prometheus/rules.yml. Then it fails on:

- `promtool check config` or `promtool check rules` errors;
- a rule whose evaluation reports an error (/api/v1/rules), or a recording rule with no data;
- a dashboard query or annotation query (deploy/grafana/dashboard.json, $__rate_interval as 30s, a
  variable as "All") that errors or returns nothing, unless EMPTY_BY_DESIGN says why it is empty on a
  healthy worker; a dashboard variable (label_values) without values.

The worker exports a few of the metric series (--export-series), so the "Exported series" panel and
its alert annotations are checked with data too.

Prints one line per query and what it returned; exits 1 on any failure, 2 when Prometheus is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml

from schemas import image_message, metric_message
from tooling.broker import LocalKafka, free_port_block
from tooling.kafka import SteadyStream, create_topics
from tooling.metric_bundles import write_last_point_bundle
from tooling.process import start_worker_process, wait_ready
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"
RATE_INTERVAL = "30s"
EXPORTED = "check_1*,check_3"  # check_1, check_10 .. check_19 and check_3; at most 5 of them
START = datetime(2026, 1, 1, tzinfo=UTC)
# Dashboard queries with no series on a healthy worker that has taken traffic, and why.
EMPTY_BY_DESIGN: dict[str, str] = {}


def dashboard_expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard as written: each panel target's by '<panel title>
    <refId>', each annotation's by 'annotation <name>' (tests/test_deploy.py checks their names too)."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = {f"{panel['title']} {target['refId']}": target["expr"]
             for panel in dashboard["panels"] for target in panel.get("targets", [])}  # fmt: skip
    annotations = dashboard["annotations"]["list"]
    found.update({f"annotation {a['name']}": a["expr"] for a in annotations if "expr" in a})
    return found


def dashboard_queries() -> dict[str, str]:
    """dashboard_expressions() with Grafana's variables filled in (a query variable as its "All": .*)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {where: fill_variables(expr, dashboard) for where, expr in dashboard_expressions().items()}


def fill_variables(expr: str, dashboard: dict) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            expr = expr.replace(f"${variable['name']}", variable.get("allValue") or ".*")
    return expr


def dashboard_variables() -> dict[str, tuple[str, str]]:
    """Each query variable's label_values(metric, label), as (metric, label) by variable name."""
    out = {}
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"]).groups()
            out[variable["name"]] = metric, label
    return out


def api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def train_image_bundle(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "training", "train", "--epochs", "1", "--out", str(folder),
                    "--no-progress"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def prometheus_config(folder: Path, worker_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        # The job name rules.yml's AnomalyWorkerDown matches.
        "scrape_configs": [
            {"job_name": "anomaly-worker", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}
        ],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def streams(bootstrap: str, topics: dict[str, str]) -> tuple[SteadyStream, SteadyStream]:
    """Images (a tenth anomalous-looking noise, one in fifty malformed) and 20 metric series."""
    rng = np.random.default_rng(0)
    from training.images.mnist import load_split

    digits = load_split("test").images[:2000]

    def image(i: int) -> bytes:
        if i % 50 == 49:
            return b'{"kind": "image", "shape": [28, 28'  # a dead letter: invalid JSON
        pixels = digits[i % len(digits)] if i % 10 else rng.integers(0, 256, (28, 28), np.uint8)
        return image_message(pixels, id=f"check/{i}", model="check-images")

    def point(i: int) -> bytes:
        series, step = i % 20, i // 20
        value = 100 + 10 * np.sin(step / 5) + rng.normal() + (500 if step % 97 == 96 else 0)
        ts = START + timedelta(seconds=60 * step)  # the hand-built bundle's grid: a point a minute
        # The value only: the metrics topic has one partition, so each series stays in order without keys.
        return metric_message(f"check_{series}", float(value), ts=ts, model="check-metrics")[1]

    return (SteadyStream(bootstrap, topics["images"], image, per_tick=20),
            SteadyStream(bootstrap, topics["metrics"], point, per_tick=40))  # fmt: skip


def start_prometheus(folder: Path, config: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(folder / "prometheus.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not start: {(folder / 'prometheus.log').read_text()[-2000:]}")


def check_rules(port: int) -> list[str]:
    """Failures among the rules as Prometheus evaluated them: an error, or a recording rule without data."""
    failures = []
    for group in api(port, "rules")["data"]["groups"]:
        for rule in group["rules"]:
            name = rule["name"]
            if rule.get("health") != "ok":
                failures.append(f"rule {name}: {rule.get('health')} {rule.get('lastError', '')}")
            elif rule["type"] == "recording":
                n = len(api(port, "query", query=name)["data"]["result"])
                print(f"  recording rule {name:<52} {n} series")
                if n == 0:
                    failures.append(f"recording rule {name}: no data")
            else:
                print(f"  alerting rule  {name:<52} ok ({rule.get('state', '?')})")
    return failures


def check_dashboard(port: int) -> list[str]:
    failures = []
    for name, (metric, label) in dashboard_variables().items():
        values = api(port, f"label/{label}/values", **{"match[]": metric})["data"]
        print(f"  dashboard variable ${name:<51} {len(values)} values")
        if not values:
            failures.append(f"dashboard variable ${name}: label_values({metric}, {label}) has no values")
    for where, expr in dashboard_queries().items():
        reply = api(port, "query", query=expr)
        if reply.get("status") != "success":
            failures.append(f"dashboard {where}: {reply.get('error')}")
            continue
        n = len(reply["data"]["result"])
        print(f"  dashboard {where:<60} {n} series")
        if n == 0 and where not in EMPTY_BY_DESIGN:
            failures.append(f"dashboard {where}: no data ({expr})")
    return failures


def promtool_checks(config: Path) -> list[str]:
    failures = []
    for args in (["check", "config", str(config)], ["check", "rules", str(RULES)]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True)
        print(f"  promtool {' '.join(args[:2])}: {'ok' if done.returncode == 0 else 'FAILED'}")
        if done.returncode != 0:
            failures.append(f"promtool {' '.join(args)}: {done.stdout}{done.stderr}")
    return failures


def run(seconds: float) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="prom-check-"))
    broker = LocalKafka(home=work / "kafka")
    worker = prometheus = None
    try:
        bootstrap = broker.start().bootstrap_servers
        repo = work / "models"
        train_image_bundle(repo / "check-images" / "1")
        write_last_point_bundle(repo / "check-metrics" / "1", window=8)
        topics = {k: f"check-{k}" for k in ("images", "metrics", "alerts", "dead", "scores")}
        create_topics(bootstrap, {t: 1 if k == "metrics" else 2 for k, t in topics.items()})
        worker_port = free_port_block(2)
        prom_port = worker_port + 1
        settings = WorkerSettings(
            bootstrap_servers=bootstrap, input_topics=f"{topics['images']},{topics['metrics']}",
            alerts_topic=topics["alerts"], dead_letter_topic=topics["dead"], scores_topic=topics["scores"],
            group_id="prom-check", model_repository=repo, default_model="check-images",
            metrics_port=worker_port, device="cpu", log_level="WARNING", export_series=EXPORTED,
            export_series_max=5,
        )  # fmt: skip
        worker = start_worker_process(settings)
        wait_ready(worker_port, worker)
        config = prometheus_config(work, worker_port)
        failures = promtool_checks(config)
        prometheus = start_prometheus(work, config, prom_port)
        images, points = streams(bootstrap, topics)
        try:
            print(f"streaming images and metric points for {seconds:.0f} s; Prometheus scrapes the worker")
            time.sleep(seconds)
            failures += check_rules(prom_port)
            failures += check_dashboard(prom_port)
        finally:
            images.stop()
            points.stop()
        return failures
    finally:
        for proc in (prometheus, worker):
            if proc is not None:
                proc.terminate()
                proc.wait(60)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tooling.promcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--seconds", type=float, default=40.0,
                   help="seconds Prometheus scrapes the worker before the queries")
    args = p.parse_args(argv)
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if missing:
        print(f"prom-check: no {' or '.join(missing)} on PATH; install Debian's package (apt-get "
              "install prometheus) or put the release binaries on PATH", file=sys.stderr)
        return 2
    failures = run(args.seconds)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print("prom-check: " + (f"{len(failures)} failure(s)" if failures else "every rule and dashboard query "
                            "evaluates without error, with data where data is expected"))  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
