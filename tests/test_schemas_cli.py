"""python -m schemas: prints every JSON Schema; --validate reports each bad line with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from schemas import image_message, metric_message
from schemas.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_prints_every_schema(capsys) -> None:
    assert main([]) == 0
    schemas = json.loads(capsys.readouterr().out)
    expected = {
        "ImageRecord",
        "MetricPoint",
        "AnomalyAlert",
        "ScoreMessage",
        "DeadLetter",
        "ModelManifest",
        "Record",
    }
    assert expected <= set(schemas)
    assert schemas["DeadLetter"]["$defs"]["Reason"]["enum"][:3] == [
        "too_large",
        "invalid_json",
        "not_an_object",
    ]
    assert set(schemas["ImageRecord"]["required"]) == {"kind", "shape", "dtype", "data"}


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "schemas", "AnomalyAlert"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert list(json.loads(done.stdout)) == ["AnomalyAlert"]


def test_unknown_schema_name_is_a_usage_error(capsys) -> None:
    try:
        main(["Nope"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "no schema named Nope" in capsys.readouterr().err


def test_validate_reports_bad_lines(tmp_path: Path, capsys) -> None:
    f = tmp_path / "records.jsonl"
    lines = [
        image_message(np.zeros((28, 28), np.uint8)),
        metric_message("cpu", 1.0)[1],
        b"{not json",
        b'{"kind": "metric", "series": "a", "value": NaN}',
        b"",
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["--validate", str(f)]) == 1
    out = capsys.readouterr().out
    assert f"{f}:3: invalid_json:" in out
    assert f"{f}:4: non_finite:" in out
    assert "4 records, 2 valid" in out


def test_validate_all_good_exits_zero(tmp_path: Path, capsys) -> None:
    f = tmp_path / "ok.jsonl"
    f.write_bytes(metric_message("cpu", 1.0)[1] + b"\n")
    assert main(["--validate", str(f)]) == 0
    assert "all good" in capsys.readouterr().out


def test_validate_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["--validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
