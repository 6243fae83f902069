"""`python -m bench.gpu_check --quick` (make gpu-check's smoke run) runs on the CPU, reports a missing
bundle instead of failing, and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import REPO
from tooling.metric_bundles import write_last_point_bundle


def test_gpu_check_quick_runs_on_the_cpu_and_writes_json(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    write_last_point_bundle(repo / "lp" / "1", window=8)
    out = tmp_path / "gpu-check.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--quick", "--device", "cpu",
         "--model-repository", str(repo),
         "--kpi-model", "lp", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert {"date", "machine", "onnxruntime", "available_providers", "providers"} <= report.keys()
    assert report["providers"] == ["CPUExecutionProvider"]
    figures = {(r["mode"], r["batch"]): r for r in report["g1"]}
    assert set(figures) == {(m, b) for m in ("run", "iobinding") for b in (1, 256, 1024)}
    assert all(r["records_per_s"] > 0 for r in figures.values())
    assert figures[("run", 256)]["x_previous_batch"] > 0 and figures[("iobinding", 1)]["x_run"] > 0
    assert any("no conv bundle" in s for s in report["skipped"])
    assert any("no dense bundle" in s for s in report["skipped"])
    assert "g1    kpi" in done.stdout and "skipped: no conv bundle" in done.stdout
