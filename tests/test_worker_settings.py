"""WorkerSettings (worker/settings.py), and the environment a worker process is started with
(tooling/process.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.settings import describe_errors
from tooling.process import worker_env
from worker.settings import WorkerSettings

SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"}


def test_secrets_never_reach_a_repr() -> None:
    s = WorkerSettings(**SASL, sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert "hunter2" not in repr(s.connection()) and "hunter2" not in str(s.connection().model_dump())
    assert s.connection().password() == "hunter2"


def test_a_launched_worker_gets_every_setting_back_from_its_environment(monkeypatch) -> None:
    s = WorkerSettings(**SASL, sasl_password="hunter2", max_batch=7, log_json=True,
                       scores_topic="scores", model_repository=Path("/models"))  # fmt: skip
    env = worker_env(s)
    assert env["WORKER_SASL_PASSWORD"] == "hunter2"  # the secret itself, not its mask
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert WorkerSettings() == s
    assert set(env) == {f"WORKER_{name.upper()}" for name in WorkerSettings.model_fields
                        if getattr(s, name) is not None}  # fmt: skip


def problem(**options: object) -> str:
    """The one line `python -m worker` prints for these options (schemas.settings.describe_errors)."""
    with pytest.raises(ValidationError) as caught:
        WorkerSettings(**options)
    return describe_errors(WorkerSettings, caught.value)


def test_the_password_comes_from_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    s = WorkerSettings(**SASL, sasl_password_file=secret)
    assert s.connection().password() == "hunter2"
    assert "hunter2" not in repr(s)
    secret.write_text("two newlines\n\n")  # only one is the editor's
    assert WorkerSettings(**SASL, sasl_password_file=secret).sasl_secret() == "two newlines\n"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"security_protocol": "SASL_SSL"},
         "needs a SASL mechanism: set --sasl-mechanism / WORKER_SASL_MECHANISM"),
        ({**SASL, "sasl_username": None, "sasl_password": "p"},
         "needs a user name: set --sasl-username / WORKER_SASL_USERNAME"),
        ({**SASL}, "needs a password (none is set): set WORKER_SASL_PASSWORD or --sasl-password-file"),
        ({**SASL, "sasl_password": ""}, "needs a password (none is set)"),
        ({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
         "needs --security-protocol / WORKER_SECURITY_PROTOCOL SASL_PLAINTEXT or SASL_SSL"),
        ({**SASL, "sasl_password": "p", "sasl_password_file": Path(__file__)},
         "--sasl-password / WORKER_SASL_PASSWORD and --sasl-password-file / WORKER_SASL_PASSWORD_FILE "
         "are both set"),
        ({"ssl_cafile": Path(__file__).with_name("__init__.py").resolve()}, "is not a PEM file"),
    ],
)  # fmt: skip
def test_security_settings_that_cannot_work_are_refused_naming_the_option(options, expected) -> None:
    line = problem(**options)
    assert expected in line and len(line.splitlines()) == 1, line


@pytest.mark.parametrize("name", ["ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"])
def test_a_missing_file_is_named_with_its_flag_and_variable(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    options = {**SASL, "security_protocol": "SASL_SSL", name: missing}
    line = problem(**options)
    flag, env = "--" + name.replace("_", "-"), "WORKER_" + name.upper()
    assert line.startswith(f"invalid {flag} / {env}: no such file: {missing}"), line


def test_every_transport_has_a_client_module_and_the_table_gives_its_capabilities() -> None:
    from typing import get_args

    from worker.kafka.transports import TRANSPORTS, TransportName

    assert set(TRANSPORTS) == set(get_args(TransportName)) == set(
        get_args(WorkerSettings.model_fields["transport"].annotation)
    )
    for transport in TRANSPORTS.values():
        module = transport.load()
        assert callable(module.build) and hasattr(module, transport.offsets)
    # exactly-once only where transactions are fenced by the group's generation
    assert [n for n, t in TRANSPORTS.items() if t.transactions] == ["confluent"]
