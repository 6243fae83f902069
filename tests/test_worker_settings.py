"""WorkerSettings (worker/settings.py), and the environment a worker process is started with
(worker/launch.py)."""

from __future__ import annotations

from pathlib import Path

from worker.launch import worker_env
from worker.settings import WorkerSettings


def test_secrets_never_reach_a_repr() -> None:
    s = WorkerSettings(sasl_mechanism="PLAIN", sasl_username="u", sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.kafka_common()["sasl_plain_password"] == "hunter2"


def test_a_launched_worker_gets_every_setting_back_from_its_environment(monkeypatch) -> None:
    s = WorkerSettings(sasl_mechanism="PLAIN", sasl_password="hunter2", max_batch=7, log_json=True,
                       scores_topic="scores", model_repository=Path("/models"))  # fmt: skip
    env = worker_env(s)
    assert env["WORKER_SASL_PASSWORD"] == "hunter2"  # the secret itself, not its mask
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert WorkerSettings() == s
    assert set(env) == {f"WORKER_{name.upper()}" for name in WorkerSettings.model_fields
                        if getattr(s, name) is not None}  # fmt: skip
