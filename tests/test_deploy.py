"""deploy/ is not run here (no Docker, no cluster): check what it shares with the code instead.

Deployments and dashboards depend on public names: every WORKER_* variable they set must be a
worker setting, and every metric their queries use must be one the worker exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from worker.metrics import new_metrics
from worker.settings import WorkerSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
YAML_FILES = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
SETTING_FILES = [DEPLOY / "compose.yaml", DEPLOY / "Dockerfile", *sorted((DEPLOY / "k8s").glob("*.yaml"))]


def exported_series() -> set[str]:
    """Every series name the worker's /metrics can show (histograms with their suffixes)."""
    registry = CollectorRegistry()
    new_metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


def test_every_worker_variable_in_deploy_is_a_setting() -> None:
    settings = {f"WORKER_{name.upper()}" for name in WorkerSettings.model_fields}
    used = {v for path in SETTING_FILES for v in re.findall(r"\bWORKER_[A-Z_]+\b", path.read_text())}
    assert len(used) >= 15  # the files were read
    assert used - settings == set()


def test_the_deployed_metrics_port_is_the_default_one() -> None:
    port = str(WorkerSettings.model_fields["metrics_port"].default)
    assert f"{port}:{port}" in (DEPLOY / "compose.yaml").read_text()
    assert f"containerPort: {port}" in (DEPLOY / "k8s" / "deployment.yaml").read_text()
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t for job in scrape["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]
    ]
    assert any(t.endswith(f":{port}") for t in targets)


def queries() -> dict[str, str]:
    """Every PromQL expression in the rules and the dashboard, by where it is."""
    found: dict[str, str] = {}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            found[f"rules.yml: {rule.get('record') or rule.get('alert')}"] = rule["expr"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found[f"dashboard.json: {panel['title']} {target['refId']}"] = target["expr"]
    return found


def test_rules_and_dashboard_query_only_metrics_the_worker_exports() -> None:
    exported = exported_series()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    unknown = {
        where: sorted(set(re.findall(r"anomaly_worker_[a-z_]+", expr)) - exported)
        for where, expr in queries().items()
    }
    assert {w: u for w, u in unknown.items() if u} == {}
    used_recordings = {n for e in queries().values() for n in re.findall(r"anomaly_worker:[a-z_0-9:]+", e)}
    assert used_recordings - recorded == set()
    # Each metric family the worker exports is on the dashboard, so a new one is not forgotten.
    on_dashboard = {n for w, e in queries().items() if w.startswith("dashboard") for n in
                    re.findall(r"anomaly_worker_[a-z_]+", e)}  # fmt: skip
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported}
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in on_dashboard}
    assert families - shown == set()


def test_every_alert_says_what_it_means() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 10
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
