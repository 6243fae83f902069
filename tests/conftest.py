"""Shared fixtures: one real Kafka broker per test session, and unique topics per test."""

from __future__ import annotations

import contextlib
import os
import traceback
import uuid
from collections.abc import Callable, Iterator

import pytest

from tooling.broker import BrokerError, LocalKafka, reachable
from tooling.kafka import STORED_PLAIN, admin, create_topic


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka: $KAFKA_BOOTSTRAP_SERVERS, or a broker started here.

    Never skips: a test that needs Kafka and cannot have it fails, in CI and out of it.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        if not reachable(external):
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer; start it or unset it")
        yield external
        return
    broker = LocalKafka(home=tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Make topics with unique names for this test: `new_topic(partitions=1)` -> name."""
    made: list[str] = []
    with admin(kafka_bootstrap, client_id="tests-admin") as client:

        def make(partitions: int = 1, prefix: str = "t", configs: dict[str, str] | None = None) -> str:
            name = f"{prefix}-{uuid.uuid4().hex[:12]}"
            configs = STORED_PLAIN if configs is None else configs
            made.append(create_topic(kafka_bootstrap, name, partitions, configs, client))
            return name

        yield make
        with contextlib.suppress(Exception):
            client.delete_topics(made)


@pytest.fixture
def worker_topics(new_topic) -> Callable[[str], dict[str, str]]:
    """`worker_topics("images")`: a 2-partition input topic, one-partition outputs and a group id. The
    input is stored uncompressed; `stored_as_sent=True`: as the producer sent it (Kafka's default)."""

    def make(input_prefix: str, stored_as_sent: bool = False) -> dict[str, str]:
        return {
            "input": new_topic(partitions=2, prefix=input_prefix, configs={} if stored_as_sent else None),
            "alerts": new_topic(prefix="alerts"),
            "dead": new_topic(prefix="dead"),
            "scores": new_topic(prefix="scores"),
            "group": f"g-{uuid.uuid4().hex[:10]}",
        }

    return make


# --- CI guard: a run in which no integration test passed is a failed run. ---------------

_integration_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _integration_passed
    if report.when == "call" and report.passed and "integration" in report.keywords:
        _integration_passed += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    terminalreporter.write_line(f"integration tests passed against a real Kafka: {_integration_passed}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    required = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    selected_integration = any("integration" in item.keywords for item in session.items)
    if required and selected_integration and _integration_passed == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- A tiny model bundle, trained once per session (the training -> ONNX -> worker round trip). ---


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A real bundle (training.images.pipeline.TrainedBundle) from ~20 s of training on real MNIST.

    Ten epochs of the default conv VAE: good enough that the worker tests can check recall
    of 5s (0.985 on the protocol; six epochs gave 0.93 on the test stream), short enough
    for every CI run.
    """
    from training.images.pipeline import train_bundle
    from training.settings import ImageTrainSettings

    out = tmp_path_factory.mktemp("models") / "tiny-vae" / "1"
    try:
        return train_bundle(ImageTrainSettings(out=out, epochs=10, progress=False))
    except Exception as exc:
        # Every test that needs the bundle errors with what this raises: the whole traceback
        # once (in the first one's captured output), then one line each.
        traceback.print_exc()
        failed = f"training the session's tiny bundle failed: {type(exc).__name__}: {exc}"
    pytest.fail(failed, pytrace=False)


@pytest.fixture(scope="module")
def tiny_models(tiny_bundle):
    """The tiny bundle, loaded as the worker loads its models (worker.serving.registry.ModelRegistry)."""
    from worker.serving.registry import ModelRegistry

    return ModelRegistry.load(tiny_bundle.folder.parent.parent, "cpu", None, None)


@pytest.fixture(params=["kafka-python", "confluent"])
def transport(request: pytest.FixtureRequest) -> str:
    """The worker's Kafka client: tests that take this fixture run once with each."""
    return request.param
