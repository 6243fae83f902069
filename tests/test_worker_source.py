"""The source stage (worker/source.py) and the Kafka clients behind it (worker/kafka/), without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.kafka.kafka_python import KafkaPythonSource
from worker.kafka.protocol import StartupError
from worker.settings import WorkerSettings
from worker.source import build_clients


def test_confluent_transport_without_its_package_says_how_to_install(monkeypatch) -> None:
    import worker.kafka.confluent as confluent

    monkeypatch.setattr(confluent, "Consumer", None)
    with pytest.raises(StartupError, match=r"pip install 'vae-anomaly-worker\[confluent\]'"):
        build_clients(WorkerSettings(transport="confluent"))


class FetchingConsumer:
    """kafka-python's poll(): everything fetched so far (up to max_records), by partition."""

    def __init__(self, fetches: list[dict]) -> None:
        self.fetches, self.polls = fetches, []

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        self.polls.append(max_records)
        return self.fetches.pop(0) if self.fetches else {}


def test_kafka_python_source_empties_each_fetch_and_hands_it_out_in_max_records() -> None:
    first = {("in", 0): list(range(0, 5)), ("in", 1): list(range(100, 103))}
    consumer = FetchingConsumer([first, {("in", 0): [5, 6]}])
    source = KafkaPythonSource(consumer, WorkerSettings(metrics_port=0))
    handed = [source.poll(10, 3) for _ in range(4)]
    assert handed == [[0, 1, 2], [3, 4, 100], [101, 102], [5, 6]]
    # kafka-python was asked for all it held, and again only once the first fetch was all handed out
    assert consumer.polls == [KafkaPythonSource.DRAIN, KafkaPythonSource.DRAIN]
    assert source.poll(10, 3) == [] and len(consumer.polls) == 3


def test_confluent_gets_the_connection_options_under_librdkafka_names(tmp_path: Path) -> None:
    from worker.kafka.confluent import config

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = WorkerSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                       sasl_password="p", ssl_cafile=ca)  # fmt: skip
    cfg = config(s)
    assert cfg.pop("logger").name == "librdkafka"
    assert cfg == {"bootstrap.servers": "localhost:9092", "security.protocol": "sasl_ssl",
                   "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p",
                   "ssl.ca.location": str(ca)}  # fmt: skip
