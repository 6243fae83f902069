"""deploy/ is not run here (no Docker, no cluster): check what it shares with the code instead.

Deployments and dashboards depend on public names: every WORKER_* variable they set must be a
worker setting, and every metric their queries use must be one the worker exports.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tooling.promcheck import dashboard_expressions
from worker.metrics import new_metrics
from worker.serving.registry import LoadedModel
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
            for key, text in rule.get("annotations", {}).items():  # templates may `query` too
                if "query" in text:
                    found[f"rules.yml: {rule['alert']} {key}"] = text
    found.update({f"dashboard.json: {where}": expr for where, expr in dashboard_expressions().items()})
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"dashboard.json: variable {variable['name']}"] = variable["definition"]
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


def test_an_alert_that_prints_a_rate_says_it_is_one() -> None:
    """`{{ $value }}` is the left-hand side of the expression: for deriv()/rate() a per-second figure."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    rates = [a for a in alerts if re.match(r"\s*\(?\s*(deriv|rate|irate)\(", a["expr"])]
    assert any(a["alert"] == "AnomalyWorkerLagGrowing" for a in rates)
    for alert in rates:
        summary = alert["annotations"]["summary"]
        if "$value" in summary:
            assert "/s" in summary, alert["alert"]


# ---- the Loaded models table: its two queries must share the labels Grafana merges on ----


def _split_args(text: str) -> list[str]:
    """Top-level, comma-separated arguments of a PromQL call (parentheses and quotes respected)."""
    args, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    return [*args, text[start:].strip()]


def evaluate(expr: str, samples: list[dict[str, str]]) -> list[dict[str, str]]:
    """The label sets an instant query returns, for the PromQL the table uses: a metric name,
    label_join, label_replace and `max|min|sum by (...)`. Anything else fails the test."""
    expr = expr.strip()
    if m := re.fullmatch(r"(max|min|sum) by \(([^)]*)\)\s*\((.*)\)", expr, re.S):
        keep = [n.strip() for n in m[2].split(",")]
        groups = {tuple((n, s.get(n, "")) for n in keep) for s in evaluate(m[3], samples)}
        return [{k: v for k, v in g if v} for g in groups]  # aggregation drops __name__
    if m := re.fullmatch(r"(label_join|label_replace)\((.*)\)", expr, re.S):
        inner, *strings = _split_args(m[2])
        dst, *rest = [a.strip("\"'") for a in strings]
        out = []
        for s in evaluate(inner, samples):
            s = dict(s)
            if m[1] == "label_join":
                s[dst] = rest[0].join(s.get(n, "") for n in rest[1:])
            else:
                repl, src, regex = rest
                if hit := re.fullmatch(regex, s.get(src, "")):
                    s[dst] = hit.expand(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", repl))
            out.append(s)
        return out
    assert re.fullmatch(r"[a-z_:]+", expr), f"the test's PromQL subset does not cover {expr!r}"
    return [s for s in samples if s["__name__"] == expr]


def scraped_model_samples() -> list[dict[str, str]]:
    """model_info and model_threshold as Prometheus stores them: labelled as worker/build.py
    labels them, for two models on two workers, plus the scrape's instance and job."""
    registry = CollectorRegistry()
    metrics, _ = new_metrics(registry)
    for name, version in (("mnist-vae", "3"), ("kpi-vae", "20260101")):
        manifest = SimpleNamespace(name=name, version=version)
        m = LoadedModel(manifest, Path("."), None, ["CPUExecutionProvider"])  # type: ignore[arg-type]
        metrics.model_threshold.labels(model=m.key).set(1.0)
        metrics.model_info.labels(m.manifest.name, m.manifest.version, m.providers[0]).set(1)
    samples = []
    for family in registry.collect():
        if family.name in ("anomaly_worker_model_info", "anomaly_worker_model_threshold"):
            for sample in family.samples:
                for instance in ("10.0.0.1:9108", "10.0.0.2:9108"):
                    labels = {**sample.labels, "instance": instance, "job": "anomaly-worker"}
                    samples.append({"__name__": sample.name, **labels})
    return samples


def test_the_loaded_models_queries_join_on_worker_and_model() -> None:
    panel = next(
        p for p in json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())["panels"]
        if p["title"] == "Loaded models"
    )  # fmt: skip
    assert panel["transformations"][0]["id"] == "merge"
    samples = scraped_model_samples()
    info, threshold = (evaluate(t["expr"], samples) for t in panel["targets"])
    assert len(info) == len(threshold) == 4
    # Grafana's merge puts rows of both queries together when every label they share is equal.
    shared = set.intersection(*(set(r) for r in info + threshold))
    assert {"instance", "model"} <= shared
    key = sorted(shared)
    assert {tuple(r[k] for k in key) for r in info} == {tuple(r[k] for k in key) for r in threshold}


# ---- Kubernetes ----


def k8s_documents() -> list[dict]:
    paths = sorted((DEPLOY / "k8s").glob("*.yaml"))
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


def deployments() -> list[dict]:
    found = [d for d in k8s_documents() if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 3  # CPU, GPU, and exactly-once's StatefulSet
    return found


def worker_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_keda_owns_the_replica_count() -> None:
    targets = {
        d["spec"]["scaleTargetRef"]["name"] for d in k8s_documents() if d["kind"] == "ScaledObject"
    }  # fmt: skip
    assert targets == {d["metadata"]["name"] for d in deployments()}
    for d in deployments():
        assert "replicas" not in d["spec"], "the ScaledObject's HPA sets replicas; apply would reset it"


def test_exactly_once_pods_keep_their_names_as_transactional_id_and_static_membership() -> None:
    """A restarted pod aborts its predecessor's open transaction at once (its default transactional.id
    holds its host name, which is the pod's) and gets its partitions back with no rebalance."""
    (eos,) = [d for d in deployments() if d["kind"] == "StatefulSet"]
    env = {e["name"]: e for e in worker_container(eos)["env"]}
    assert env["WORKER_PROCESSING_GUARANTEE"]["value"] == "exactly-once"
    assert env["WORKER_TRANSPORT"]["value"] == "confluent"
    assert env["WORKER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "WORKER_TRANSACTIONAL_ID" not in env  # the default: <group>-<pod name>-0, stable
    WorkerSettings(processing_guarantee="exactly-once", transport="confluent", group_instance_id="w-0")


def test_the_pdb_lets_unhealthy_pods_be_evicted() -> None:
    (pdb,) = [d for d in k8s_documents() if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for d in deployments():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_deployment_probes_start_up_liveness_and_readiness() -> None:
    for d in deployments():
        c = worker_container(d)
        ports = {p["name"] for p in c["ports"]}
        startup, live, ready = c["startupProbe"], c["livenessProbe"], c["readinessProbe"]
        assert (startup["httpGet"]["path"], live["httpGet"]["path"], ready["httpGet"]["path"]) == (
            "/healthz", "/healthz", "/readyz"
        )  # fmt: skip
        for probe in (startup, live, ready):
            assert probe["httpGet"]["port"] in ports
        # Generous: a slow first start is waited for, not killed (the kubelet defaults are 10 s x 3).
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, d["metadata"]["labels"]
        # A start is Ready in 1-4 s, a join takes 3 s (docs/deploy.md#pod-start): readiness looks
        # often, and one rebalance does not mark a pod not ready.
        assert ready["periodSeconds"] <= 5 < ready["periodSeconds"] * ready["failureThreshold"]


def test_home_is_writable_on_a_read_only_root() -> None:
    """onnxruntime writes under $HOME/.cache at start; on a read-only root it warns, unformatted."""
    for d in deployments():
        c = worker_container(d)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"]: e.get("value") for e in c["env"]}
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        writable = [
            m["mountPath"] for m in c["volumeMounts"]
            if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
        ]  # fmt: skip
        assert any(env["HOME"] == p or env["HOME"].startswith(p + "/") for p in writable)
    runtime = (DEPLOY / "Dockerfile").read_text().split("\nFROM ")[-1]
    assert re.search(r"^\s+HOME=/tmp\b", runtime, re.M)


def test_the_worker_and_keda_trust_the_same_ca() -> None:
    docs = k8s_documents()
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    cafile = Path(config["data"]["WORKER_SSL_CAFILE"])
    (auth,) = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    (ca,) = [r for r in auth["spec"]["secretTargetRef"] if r["parameter"] == "ca"]
    for d in deployments():
        c = worker_container(d)
        (mount,) = [m for m in c["volumeMounts"] if Path(m["mountPath"]) == cafile.parent]
        (volume,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == ca["name"]
        assert {"key": ca["key"], "path": cafile.name} in volume["secret"]["items"]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert ca["key"] in secrets[ca["name"]]["stringData"]


def test_the_metrics_server_listens_on_every_pod_address() -> None:
    """Probes reach the pod IP, `kubectl port-forward` reaches localhost: bind both (0.0.0.0)."""
    (config,) = [d for d in k8s_documents() if d["kind"] == "ConfigMap"]
    assert config["data"]["WORKER_METRICS_HOST"] == "0.0.0.0"
    for d in deployments():
        assert "WORKER_METRICS_HOST" not in {e["name"] for e in worker_container(d)["env"]}


# ---- Dockerfile ----


def build_stage() -> list[str]:
    """The build stage's instructions, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = re.split(r"\n(?=[A-Z]+ )", "\n".join(lines).replace("\\\n", ""))
    start = next(i for i, x in enumerate(instructions) if x.startswith("FROM ") and " AS build" in x)
    end = next(i for i, x in enumerate(instructions) if i > start and x.startswith("FROM "))
    return [x.strip() for x in instructions[start:end]]


def test_the_dependencies_layer_depends_on_pyproject_only(tmp_path: Path) -> None:
    stage = build_stage()
    copies = [i for i, x in enumerate(stage) if x.startswith("COPY ")]
    deps = next(i for i, x in enumerate(stage) if x.startswith("RUN ") and "pip install" in x)
    assert stage[copies[0]] == "COPY pyproject.toml ./" and copies[0] < deps < copies[1]
    last_copy = copies[-1]
    package = next(x for x in stage[last_copy:] if x.startswith("RUN ") and "pip install" in x)
    assert "--no-deps" in package
    # The layer installs what pyproject.toml lists: run its extraction step on the real file.
    extract = stage[deps].removeprefix("RUN ").split(" && ")[0]
    assert extract.startswith("python ")
    out = tmp_path / "requirements.txt"
    command = extract.replace("python", shlex.quote(sys.executable), 1)
    command = command.replace("/tmp/requirements.txt", str(out))
    subprocess.run(["sh", "-c", command], cwd=DEPLOY.parent, check=True, timeout=60)
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    assert out.read_text().split() == project["dependencies"] + project["optional-dependencies"]["confluent"]
