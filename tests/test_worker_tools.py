"""The chores beside the worker (`python -m worker topics|send|follow`, worker/tools/) where no broker is
needed: their help, what they say of a CSV's columns, and one line (not NoBrokersAvailable) when
Kafka cannot be reached. On the real broker: test_worker_tools_kafka.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tooling.process import PACKAGE_ROOT
from worker.tools.send import SendSettings, records

NOWHERE = "127.0.0.1:1"  # nothing listens on port 1: refused at once


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_topics_help_lists_the_sub_commands() -> None:
    for flag in ("--help", "-h"):
        done = tool("topics", flag)
        assert done.returncode == 0, done.stderr
        assert "sub-commands:" in done.stdout and "\n  create NAMES" in done.stdout, done.stdout
        assert "python -m worker topics create --help" in done.stdout


@pytest.mark.parametrize("args", [(), ("crate", "images")])
def test_topics_without_a_known_sub_command_says_which_there_are(args: tuple[str, ...]) -> None:
    done = tool("topics", *args)
    assert done.returncode == 2 and "one of: create (--help for more)" in done.stderr, done.stderr
    assert "usage: python -m worker topics create NAMES" in done.stderr


@pytest.mark.parametrize("args", [
    ("send", "{csv}", "--topic", "metrics"),
    ("follow", "--idle-exit-s", "1"),
    ("topics", "create", "images"),
])  # fmt: skip
def test_an_unreachable_broker_is_said_as_the_worker_says_it(args: tuple[str, ...], tmp_path: Path) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text("series,timestamp,value\ncpu,2026-01-01T00:00:00Z,1\n")
    done = tool(*(a.format(csv=csv) for a in args), "--bootstrap-servers", NOWHERE)
    [line] = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr  # as the worker: the broker may come back
    assert line.startswith(f"worker {args[0]}: cannot reach Kafka at {NOWHERE} ("), line
    assert "check --bootstrap-servers / WORKER_BOOTSTRAP_SERVERS" in line


def test_send_names_the_csv_columns_it_does_not_read_and_where_labels_go(tmp_path: Path) -> None:
    csv = tmp_path / "mine.csv"
    rows = [f"cpu,2026-01-01T00:0{m}:00Z,{m},a,x" for m in range(2)]
    csv.write_text("\n".join(["series,timestamp,value,host,dc", *rows]) + "\n")
    said: list[str] = []
    got = list(records(SendSettings(file=csv), warn=said.append))
    assert len(got) == 2 and all(b'"labels":{}' in value for _, value in got)
    [warning] = said
    read = "send reads series, timestamp and value"
    assert warning.startswith(f"warning: {csv}: column(s) host, dc not read: {read}"), warning
    assert ".jsonl file of metric points" in warning and "docs/wire-format.md#input-metric-point" in warning


def test_send_reads_the_file_before_it_connects(tmp_path: Path) -> None:
    """A file that cannot be read is said first, whatever the broker: that is the thing to fix."""
    for missing in ("none.csv", "none.jsonl"):
        done = tool("send", str(tmp_path / missing), "--bootstrap-servers", NOWHERE)
        assert done.returncode == 1 and "cannot reach Kafka" not in done.stderr, done.stderr
        assert "none." in done.stderr and "Traceback" not in done.stderr
