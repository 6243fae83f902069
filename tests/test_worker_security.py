"""Kafka security settings against a real broker with SASL and TLS listeners (tests/kafka_secure.py):
each mistake ends `python -m worker` with exit 2 and one line that names the cause and the option
to change, on both transports; the right settings pass the start-up check."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_secure import PASSWORD, USER, SecureKafka, secure_broker
from tooling.broker import BrokerError
from tooling.metric_bundles import write_last_point_bundle
from tooling.process import PACKAGE_ROOT
from worker.settings import WorkerSettings

pytestmark = pytest.mark.integration

# Generous: a loaded CI machine; a check gives up after 10 s, a settings error is immediate.
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A broker of this module's own: PLAINTEXT, SASL_PLAINTEXT (PLAIN) and two SSL listeners."""
    secured = secure_broker(tmp_path_factory.mktemp("secure-kafka"))
    try:
        secured.broker.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    try:
        yield secured
    finally:
        secured.broker.stop()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model the worker loads in a moment (it loads its models before it connects)."""
    repo = tmp_path_factory.mktemp("repo")
    write_last_point_bundle(repo / "last-point" / "1")
    return repo


def run_worker(repository: Path, transport: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m worker` configured through WORKER_* variables, as a container is; the password
    never goes on the command line."""
    args = ["--metrics-port", "0", "--model-repository", str(repository), "--transport", transport]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")} | env
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=PACKAGE_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)  # fmt: skip


def last_line(done: subprocess.CompletedProcess) -> str:
    """The one line the worker ended with, after checking it is the only error and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line or line.startswith("worker: ")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


def sasl_env(bootstrap: str, password: str | None = PASSWORD, mechanism: str = "PLAIN") -> dict[str, str]:
    env = {"WORKER_BOOTSTRAP_SERVERS": bootstrap, "WORKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "WORKER_SASL_MECHANISM": mechanism, "WORKER_SASL_USERNAME": USER}  # fmt: skip
    return env | ({"WORKER_SASL_PASSWORD": password} if password is not None else {})


def ssl_env(bootstrap: str, cafile: Path) -> dict[str, str]:
    return {"WORKER_BOOTSTRAP_SERVERS": bootstrap, "WORKER_SECURITY_PROTOCOL": "SSL",
            "WORKER_SSL_CAFILE": str(cafile)}  # fmt: skip


def assert_config_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    line = last_line(done)
    assert done.returncode == 2, done.stderr
    for text in expected:
        assert text in line, line
    return line


def test_wrong_password(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, sasl_env(secure_kafka.sasl, password="not-the-password"))
    assert_config_error(done, f"Kafka at {secure_kafka.sasl} refused the SASL login for user '{USER}'",
                        "--sasl-username / WORKER_SASL_USERNAME", "WORKER_SASL_PASSWORD")  # fmt: skip


def test_missing_password_is_a_settings_error(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, sasl_env(secure_kafka.sasl, password=None))
    assert_config_error(done, "--sasl-mechanism PLAIN needs a password",
                        "WORKER_SASL_PASSWORD or --sasl-password-file")  # fmt: skip


def test_password_file_logs_in(secure_kafka, repository, transport, tmp_path) -> None:
    """The password from --sasl-password-file (its trailing newline dropped) passes the login, so the
    worker gets past the connection check to the next one: its input topic does not exist."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    env = sasl_env(secure_kafka.sasl, password=None) | {"WORKER_SASL_PASSWORD_FILE": str(secret),
                                                         "WORKER_INPUT_TOPICS": "no-such-topic"}  # fmt: skip
    done = run_worker(repository, transport, env)
    line = last_line(done)
    assert done.returncode == 1 and "input topic(s) no-such-topic do not exist" in line, done.stderr


def test_wrong_mechanism(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, sasl_env(secure_kafka.sasl, mechanism="SCRAM-SHA-256"))
    assert_config_error(done, "does not offer SASL mechanism SCRAM-SHA-256 (it offers PLAIN)",
                        "--sasl-mechanism / WORKER_SASL_MECHANISM")  # fmt: skip


def test_no_sasl_against_a_sasl_listener(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, {"WORKER_BOOTSTRAP_SERVERS": secure_kafka.sasl})
    assert_config_error(done, f"Kafka at {secure_kafka.sasl} expects a SASL login (mechanisms PLAIN)",
                        "--security-protocol / WORKER_SECURITY_PROTOCOL to SASL_PLAINTEXT")  # fmt: skip


def test_sasl_against_a_plaintext_listener(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, sasl_env(secure_kafka.plaintext))
    assert_config_error(done, "takes no SASL login on this listener",
                        "--security-protocol / WORKER_SECURITY_PROTOCOL to PLAINTEXT")  # fmt: skip


def test_plaintext_against_a_tls_listener(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, {"WORKER_BOOTSTRAP_SERVERS": secure_kafka.ssl})
    assert_config_error(done, f"Kafka at {secure_kafka.ssl} speaks TLS",
                        "--security-protocol / WORKER_SECURITY_PROTOCOL to SSL or SASL_SSL")  # fmt: skip


def test_tls_against_a_plaintext_listener(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, ssl_env(secure_kafka.plaintext, secure_kafka.pki.ca))
    assert_config_error(done, f"Kafka at {secure_kafka.plaintext} does not speak TLS",
                        "WORKER_SECURITY_PROTOCOL to PLAINTEXT or SASL_PLAINTEXT")  # fmt: skip


def test_untrusted_ca(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, ssl_env(secure_kafka.ssl, secure_kafka.pki.rogue_ca))
    assert_config_error(done, "shows a TLS certificate that is not trusted (certificate verify failed",
                        "--ssl-cafile / WORKER_SSL_CAFILE")  # fmt: skip


def test_hostname_mismatch(secure_kafka, repository, transport) -> None:
    done = run_worker(repository, transport, ssl_env(secure_kafka.ssl_other_name, secure_kafka.pki.ca))
    assert_config_error(done, "shows a TLS certificate that is not valid for 'localhost' (hostname mismatch)",
                        "--bootstrap-servers / WORKER_BOOTSTRAP_SERVERS")  # fmt: skip


def test_missing_ca_file(secure_kafka, repository, transport, tmp_path) -> None:
    missing = tmp_path / "no-ca.pem"
    done = run_worker(repository, transport, ssl_env(secure_kafka.ssl, missing))
    assert_config_error(done, f"invalid --ssl-cafile / WORKER_SSL_CAFILE: no such file: {missing}")


def test_unreachable_broker_stays_apart_from_configuration(repository, transport) -> None:
    """Nothing listens: exit 1, "cannot reach", not a configuration error (waiting can help here)."""
    done = run_worker(
        repository, transport, {"WORKER_BOOTSTRAP_SERVERS": "127.0.0.1:1", "WORKER_KAFKA_WAIT_S": "2"}
    )
    line = last_line(done)
    assert done.returncode == 1 and "cannot reach Kafka at 127.0.0.1:1" in line, done.stderr


@pytest.mark.parametrize("listener", ["sasl", "ssl"])
def test_right_settings_pass_the_check(secure_kafka, transport, listener) -> None:
    """In-process: the check lets the right settings through, on each secured listener."""
    if transport == "confluent":
        from worker.kafka.confluent import check_connection
    else:
        from worker.kafka.kafka_python import check_connection
    if listener == "sasl":
        s = WorkerSettings(bootstrap_servers=secure_kafka.sasl, security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="PLAIN", sasl_username=USER, sasl_password=PASSWORD)  # fmt: skip
    else:
        s = WorkerSettings(bootstrap_servers=secure_kafka.ssl, security_protocol="SSL",
                           ssl_cafile=secure_kafka.pki.ca)  # fmt: skip
    check_connection(s)
