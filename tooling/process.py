"""`python -m worker` as a process of its own, configured through WORKER_* variables as a container is:
how the demo, the bench, the tests and the tooling programs start one, and wait for it to be ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from worker.settings import WorkerSettings

# The folder holding the worker package: run from there, `-m worker` finds this very package.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class WorkerNotReady(RuntimeError):
    pass


def worker_env(settings: WorkerSettings) -> dict[str, str]:
    """Every setting that has a value, as the environment variable that sets it (secrets included)."""
    prefix = WorkerSettings.model_config["env_prefix"]
    env = {}
    for name in WorkerSettings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        secret = isinstance(value, SecretStr)
        env[f"{prefix}{name}".upper()] = value.get_secret_value() if secret else str(value)
    return env


def start_worker_process(
    settings: WorkerSettings | None = None, args: Sequence[str] = (), **popen: Any
) -> subprocess.Popen:
    """Start `python -m worker *args` with `settings` in its environment (None: this process's
    environment as it is); `popen` goes to subprocess.Popen (stdout=..., text=...)."""
    env = dict(os.environ)
    if settings is not None:
        env.update(worker_env(settings))
    return subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=PACKAGE_ROOT, env=env, **popen)


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """Until the worker's /readyz says 200; WorkerNotReady if it exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WorkerNotReady(f"the worker exited with code {proc.returncode} before it was ready")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise WorkerNotReady(f"the worker was not ready within {timeout_s:.0f} s")


def metric_total(port: int, name: str, label: str = "") -> float:
    """Sum of a worker metric over its label sets (those containing `label`); 0 if not reachable."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )


def worker_settings(
    bootstrap: str, repository: Path, topics: dict[str, str], **overrides: object
) -> WorkerSettings:
    """Settings for a test's worker: its topics and group, no metrics server of its own, the CPU."""
    return WorkerSettings(**{
        "bootstrap_servers": bootstrap,
        "input_topics": topics["input"],
        "alerts_topic": topics["alerts"],
        "dead_letter_topic": topics["dead"],
        "scores_topic": topics.get("scores"),
        "group_id": topics["group"],
        "model_repository": repository,
        "metrics_port": 0,
        "device": "cpu",
        # A test's group: a member killed by a test leaves within 10 s, not the default 30.
        "session_timeout_ms": 10_000,
        **overrides,
    })  # fmt: skip


def start_piped(settings: WorkerSettings) -> subprocess.Popen:
    """`python -m worker` configured through WORKER_* variables, as a container would run it; its
    output (stdout and stderr together) readable as text."""
    settings = settings.model_copy(update={"metrics_port": 0})
    return start_worker_process(settings, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
