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


def test_a_point_with_its_time_under_another_name_is_refused_by_the_validator_and_the_worker(
    tmp_path: Path, capsys
) -> None:
    """`timestamp` (a CSV column name training reads) instead of `ts`: the same dead-letter reason and
    message from `python -m schemas --validate` and from the worker's decode, naming `ts`."""
    from schemas.decode import decode

    point = '{"kind": "metric", "series": "a", "value": 1, "%s": "2026-11-22T10:00:00Z"}'
    misnamed = [(point % name).encode() for name in ("timestamp", "time", "datetime", "date")]
    f = tmp_path / "points.jsonl"
    f.write_bytes(b"\n".join(misnamed) + b"\n")
    assert main(["--validate", str(f)]) == 1
    out = capsys.readouterr().out
    for line, name in enumerate(("timestamp", "time", "datetime", "date"), start=1):
        assert f"{f}:{line}: bad_timestamp: {name}: a metric point's time goes in `ts`" in out, out
    rejected = decode(misnamed[0])
    assert rejected.reason.value == "bad_timestamp" and "goes in `ts`" in rejected.error
    assert decode(metric_message("a", 1.0)[1]).series == "a"  # `ts` itself, or none, as before
