"""deploy/prometheus/rules.yml through promtool, where it is installed (`make rule-test` does the same):
the linter, and the rule unit tests in deploy/prometheus/tests/ (what each alert fires on, and what
it must not fire on). Skipped, and said so, without promtool; `make test` installs it first, so CI
runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (make prometheus)")


def promtool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=300)


@needs_promtool
def test_the_rules_pass_the_linter() -> None:
    done = promtool("check", "rules", "--lint=all", PROMETHEUS / "rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_the_rule_unit_tests_pass(path: Path) -> None:
    done = promtool("test", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_model_version_alerts_have_unit_tests() -> None:
    tested = {
        case.get("alertname")
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }  # fmt: skip
    assert {"AnomalyWorkerModelVersionRefused", "AnomalyWorkerAlertRateSpike"} <= tested
