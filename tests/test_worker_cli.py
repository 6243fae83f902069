"""`python -m worker` (worker/cli.py) as a user runs it: one line per fixable error, --help, exit codes."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.worker_fakes import copy_bundle
from tooling.process import start_worker_process
from worker.settings import WorkerSettings


def run_worker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    args = ("--metrics-port", "0", *args)
    proc = start_worker_process(None, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_cli_missing_model_repository_is_one_line(tmp_path: Path) -> None:
    done = run_worker("--model-repository", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "model repository" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_corrupted_bundle_is_one_line(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    (folder / "model.onnx").write_bytes(b"not a model")
    done = run_worker("--model-repository", str(tmp_path / "repo"))
    assert done.returncode == 1 and "sha256 does not match" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_unreachable_broker_is_one_error_line(tiny_bundle, tmp_path: Path) -> None:
    copy_bundle(tiny_bundle, tmp_path)
    done = run_worker("--model-repository", str(tmp_path / "repo"), "--bootstrap-servers", "127.0.0.1:1",
                      "--kafka-wait-s", "3")  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot reach Kafka at 127.0.0.1:1" in errors[0], done.stderr
    # It waited first, and said so with the option that bounds the wait.
    waits = [line for line in done.stderr.splitlines() if " WARNING " in line and "--kafka-wait-s" in line]
    assert waits and "retrying for up to 3 s" in waits[0], done.stderr


def test_cli_metrics_port_in_use_is_one_line_naming_flag_and_variable(tmp_path: Path) -> None:
    with socket.create_server(("0.0.0.0", 0)) as taken:  # the server binds before the models load
        port = taken.getsockname()[1]
        done = run_worker("--metrics-port", str(port), "--model-repository", str(tmp_path))
    assert done.returncode == 1
    assert f"metrics port {port} is already in use" in done.stderr
    assert "--metrics-port / WORKER_METRICS_PORT" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_cli_bad_option_names_flag_and_variable() -> None:
    done = run_worker("--max-batch", "0")
    assert done.returncode == 2
    assert "--max-batch / WORKER_MAX_BATCH" in done.stderr


def test_cli_help_lists_every_option() -> None:
    done = run_worker("--help")
    for name in WorkerSettings.model_fields:
        assert "--" + name.replace("_", "-") in done.stdout


def test_an_unexpected_error_ends_with_one_line_naming_it(monkeypatch, capsys) -> None:
    from worker import cli

    def broken(settings: WorkerSettings) -> int:
        raise KeyError("assignment")

    monkeypatch.setattr(cli, "run", broken)
    monkeypatch.setattr(cli.logs, "configure", lambda level, json: None)  # the test's own log capture
    handler_lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_lines.append(self.format(record))

    lines = Lines()
    cli.log.addHandler(lines)
    try:
        assert cli.main(["--metrics-port", "0"]) == 1
    finally:
        cli.log.removeHandler(lines)
    last = handler_lines[-1].splitlines()[-1]
    assert last.startswith("stopped by an unexpected error") and "KeyError: 'assignment'" in last
    assert any("Traceback" in line for line in handler_lines[:-1])  # the traceback comes before it


@pytest.mark.parametrize("transport", ["kafka-python", "confluent"])
def test_a_bootstrap_host_that_does_not_resolve_is_said_as_such(tiny_bundle, transport) -> None:
    done = run_worker("--bootstrap-servers", "kafak-1.invalid:9092", "--kafka-wait-s", "1", "--transport",
                      transport, "--model-repository", str(tiny_bundle.folder.parent.parent))  # fmt: skip
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "the host name 'kafak-1.invalid'" in last and "does not resolve" in last, done.stderr
    assert "--bootstrap-servers / WORKER_BOOTSTRAP_SERVERS" in last


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_waiting_for_kafka_is_one_line_and_exit_0(tiny_bundle, signum) -> None:
    """Ctrl-C (or SIGTERM) while the worker waits for a Kafka that does not answer: no traceback."""
    args = ("--metrics-port", "0", "--bootstrap-servers", "127.0.0.1:1", "--model-repository",
            str(tiny_bundle.folder.parent.parent))  # fmt: skip
    proc = start_worker_process(None, args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("retrying until it answers" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("retrying until it answers" in line for line in lines), lines
        proc.send_signal(signum)
        code = proc.wait(60)
    finally:
        proc.kill()
    reader.join(10)
    out = "".join(lines)
    assert code == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert out.strip().splitlines()[-1].endswith(
        f"{signal.Signals(signum).name} while starting: stopped before consuming anything"
    ), out


def test_the_gil_switch_interval_suits_the_kinds_served_unless_given() -> None:
    from worker.cli import gil_switch_interval_ms

    assert gil_switch_interval_ms(None, {"image"}) == 0.5  # the scoring thread is the bound
    assert gil_switch_interval_ms(None, {"image", "metric"}) == 0.5
    assert gil_switch_interval_ms(None, {"metric"}) == 5.0  # the loop's Python is: Python's own
    assert gil_switch_interval_ms(2.0, {"image"}) == 2.0
    assert gil_switch_interval_ms(2.0, {"metric"}) == 2.0


def test_the_worker_sets_the_gil_switch_interval_and_freezes_its_start_up_before_it_consumes(
    monkeypatch,
) -> None:
    import gc
    import sys
    from types import SimpleNamespace

    from worker import cli

    seen: list[float] = []
    frozen: list[int] = []

    def consume() -> None:
        seen.append(sys.getswitchinterval())
        frozen.append(gc.get_freeze_count())

    def built(settings: WorkerSettings) -> SimpleNamespace:
        model = SimpleNamespace(manifest=SimpleNamespace(kind="metric"))
        return SimpleNamespace(models=[model], committed_at_stop=True, run=consume)

    monkeypatch.setattr(cli, "build_worker", built)
    monkeypatch.setattr(cli, "install_startup_signals", lambda: None)
    monkeypatch.setattr(cli, "install_signals", lambda worker: None)
    before = sys.getswitchinterval()
    try:
        for settings in (WorkerSettings(), WorkerSettings(gil_switch_interval_ms=2.0)):
            assert cli.run(settings) == 0
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()
    assert seen == pytest.approx([0.005, 0.002])  # a metric model alone: Python's 5 ms; then as given
    assert all(n > 1000 for n in frozen), frozen  # start-up's objects: out of later collections
