"""The source stage (worker/source.py) and the Kafka clients behind it (worker/kafka/), without a broker."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from schemas import Reason, Rejection
from worker.decode import decode_message
from worker.kafka.confluent import fetch_limits
from worker.kafka.kafka_python import KafkaPythonSource
from worker.kafka.protocol import KafkaConfigError, StartupError
from worker.settings import WorkerSettings
from worker.source import build_clients, check_unpacking


def test_confluent_transport_without_its_package_says_how_to_install(monkeypatch) -> None:
    import worker.kafka.confluent as confluent

    monkeypatch.setattr(confluent, "Consumer", None)
    with pytest.raises(StartupError, match=r"pip install 'vae-anomaly-worker\[confluent\]'"):
        build_clients(WorkerSettings(transport="confluent"))


class FetchingConsumer:
    """kafka-python's poll(): everything fetched so far (up to max_records), by partition; its client's
    poll(), the wait for the network, is recorded."""

    def __init__(self, fetches: list[dict]) -> None:
        self.fetches, self.polls, self.timeouts, self.waits = fetches, [], [], []
        self._client = self

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict | None:
        if max_records is None:  # the client's poll: a wait for the sockets
            self.waits.append(timeout_ms)
            return None
        self.polls.append(max_records)
        self.timeouts.append(timeout_ms)
        return self.fetches.pop(0) if self.fetches else {}


def test_kafka_python_source_empties_each_fetch_and_hands_it_out_in_max_records() -> None:
    first = {("in", 0): list(range(0, 5)), ("in", 1): list(range(100, 103))}
    consumer = FetchingConsumer([first, {("in", 0): [5, 6]}])
    source = KafkaPythonSource(consumer, WorkerSettings(metrics_port=0))
    handed = [source.poll(10, 3) for _ in range(4)]
    assert handed == [[0, 1, 2], [3, 4, 100], [101, 102], [5, 6]]
    # kafka-python was asked for all it held, and again only once the first fetch was all handed out
    assert consumer.polls == [KafkaPythonSource.DRAIN, KafkaPythonSource.DRAIN]
    assert source.poll(10, 3) == [] and len(consumer.polls) == 4  # nothing at once: a wait, then again


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


def test_kafka_python_gets_the_same_connection_under_its_own_names(tmp_path: Path) -> None:
    from worker.kafka.kafka_python import connection_options

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = WorkerSettings(bootstrap_servers="a:9092,b:9093", security_protocol="SASL_SSL",
                       sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p",
                       ssl_cafile=ca)  # fmt: skip
    assert connection_options(s.connection()) == {
        "bootstrap_servers": ["a:9092", "b:9093"], "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u", "sasl_plain_password": "p", "ssl_cafile": str(ca)}  # fmt: skip


class ConfiguredSource:
    """Answers describe_configs as a broker would, or fails as one that refuses it does."""

    def __init__(self, configs: dict[str, dict[str, str]] | Exception) -> None:
        self.configs, self.asked = configs, []

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        self.asked.append(topics)
        if isinstance(self.configs, Exception):
            raise self.configs
        return {t: self.configs[t] for t in topics if t in self.configs}


def confluent(**overrides: object) -> WorkerSettings:
    return WorkerSettings(transport="confluent", input_topics="a,b", metrics_port=0, **overrides)


def test_kafka_python_needs_no_unpacking_check_it_unpacks_within_its_own_limit() -> None:
    source = ConfiguredSource({"a": {"compression.type": "gzip"}})
    check_unpacking(WorkerSettings(input_topics="a", metrics_port=0), source)
    assert source.asked == []


def test_confluent_starts_quietly_when_every_input_topic_is_stored_uncompressed(caplog) -> None:
    source = ConfiguredSource({t: {"compression.type": "uncompressed"} for t in ("a", "b")})
    check_unpacking(confluent(unbounded_unpacking="refuse"), source)
    assert source.asked == [["a", "b"]] and not caplog.records


def test_confluent_warns_naming_the_topic_and_the_fix_when_batches_may_be_compressed(caplog) -> None:
    source = ConfiguredSource({"a": {"compression.type": "uncompressed"},
                               "b": {"compression.type": "producer"}})  # fmt: skip
    check_unpacking(confluent(unbounded_unpacking="warn"), source)
    [record] = caplog.records
    text = record.getMessage()
    assert record.levelname == "WARNING" and "input topic(s) b:" in text and "a," not in text
    assert "compression.type=uncompressed" in text and "(started anyway: --unbounded-unpacking warn)" in text


def test_confluent_refuses_to_start_on_compressed_topics_by_default_naming_the_fixes() -> None:
    source = ConfiguredSource({"a": {"compression.type": "gzip"}, "b": {"compression.type": "uncompressed"}})
    with pytest.raises(KafkaConfigError, match=r"input topic\(s\) a: .*WORKER_UNBOUNDED_UNPACKING warn$"):
        check_unpacking(confluent(), source)


def test_a_broker_that_will_not_describe_the_topics_counts_as_compressed(caplog) -> None:
    denied = ConfiguredSource(RuntimeError("TOPIC_AUTHORIZATION_FAILED"))
    check_unpacking(confluent(unbounded_unpacking="warn"), denied)
    assert "could not read their compression.type (TOPIC_AUTHORIZATION_FAILED)" in caplog.text
    with pytest.raises(KafkaConfigError):
        check_unpacking(confluent(unbounded_unpacking="refuse"), ConfiguredSource(RuntimeError("denied")))


def test_confluent_caps_zstd_unpacking_at_the_limit_but_never_below_one_fetch_response() -> None:
    assert fetch_limits(confluent(max_unpacked_bytes=64 << 20))["receive.message.max.bytes"] == 64 << 20
    small = fetch_limits(confluent(max_unpacked_bytes=1 << 20))
    assert small["receive.message.max.bytes"] == small["fetch.max.bytes"] + 512


class ErrorMessage:
    """What librdkafka's consume() hands out for a record batch it could not read."""

    def __init__(self, code: int, topic: str = "in", offset: int = 42) -> None:
        self._error, self._topic, self._offset = KafkaError(code, "Decompression failed"), topic, offset

    def error(self) -> KafkaError:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return self._offset


class QueuedConsumer:
    """librdkafka's consume(), and its seek(): a seek drops what was queued for the partition."""

    def __init__(self, messages: list) -> None:
        self.messages, self.seeks = messages, []

    def consume(self, num_messages: int, timeout: float) -> list:
        taken, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return taken

    def seek(self, partition) -> None:
        self.seeks.append(partition.offset)


def test_confluent_steps_through_a_batch_librdkafka_cannot_read_one_dead_letter_per_offset() -> None:
    from worker.kafka.confluent import ConfluentSource

    consumer = QueuedConsumer([])
    source = ConfluentSource(consumer, {}, zstd_limit=32 << 20)
    letters = []
    # the batch holds offsets 42-44: each fetch from inside it reports its first offset again
    for _ in range(3):
        stale = ErrorMessage(KafkaError._BAD_COMPRESSION)  # fetched before the seek: ignored
        consumer.messages = [ErrorMessage(KafkaError._BAD_COMPRESSION), stale,
                             ErrorMessage(KafkaError._TRANSPORT, offset=-1001)]  # fmt: skip
        letters += source.poll(10, 100)
    assert [m.offset for m in letters] == [42, 43, 44] and consumer.seeks == [43, 44, 45]
    assert all(m.value is None and m.partition == 3 for m in letters)
    assert "batch at offset 42 that holds this offset" in letters[1].unreadable
    assert "33,554,432 bytes (--max-unpacked-bytes" in letters[0].unreadable
    rejection = decode_message(letters[0], None, {}, 1 << 20)
    assert rejection == Rejection(Reason.UNREADABLE, letters[0].unreadable)
    # the next batch is bad too: its own first offset, not the walk's
    consumer.messages = [ErrorMessage(KafkaError._BAD_MSG, offset=45)]
    assert [m.offset for m in source.poll(10, 100)] == [45] and consumer.seeks[-1] == 46


class OkMessage(ErrorMessage):
    def __init__(self, offset: int, partition: int = 3) -> None:
        super().__init__(KafkaError._BAD_MSG, offset=offset)
        self._partition = partition

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def timestamp(self) -> tuple[int, int]:
        return (1, 7)


def test_confluent_keeps_other_partitions_while_stepping_and_ends_the_step_at_the_next_record() -> None:
    from worker.kafka.confluent import ConfluentSource

    consumer = QueuedConsumer([OkMessage(9, partition=0), ErrorMessage(KafkaError._BAD_COMPRESSION),
                               OkMessage(10, partition=0), OkMessage(43)])  # fmt: skip
    source = ConfluentSource(consumer, {}, zstd_limit=1 << 20)
    polled = source.poll(10, 100)  # partition 3's record after the bad batch was fetched before the seek
    assert [(m.partition, m.offset, m.value) for m in polled] == [(0, 9, b"v"), (3, 42, None), (0, 10, b"v")]
    consumer.messages = [OkMessage(43)]  # fetched again from the seek: the batch held offset 42 only
    assert [(m.partition, m.offset, m.timestamp) for m in source.poll(10, 100)] == [(3, 43, 7)]
    consumer.messages = [ErrorMessage(KafkaError._BAD_COMPRESSION, offset=50)]  # a new bad batch
    assert [m.offset for m in source.poll(10, 100)] == [50] and consumer.seeks == [43, 51]


def test_the_kafka_python_partitioner_is_librdkafkas() -> None:
    from worker.kafka.kafka_python import librdkafka_partition

    everyone = [0, 1, 2, 3, 4, 5, 6]
    assert librdkafka_partition(b"bench/0", everyone, everyone) == zlib.crc32(b"bench/0") % 7
    # the partition follows the key over all partitions, whether or not its leader is available now
    assert librdkafka_partition(b"bench/0", everyone, [5]) == zlib.crc32(b"bench/0") % 7
    for no_key in (None, b""):
        assert {librdkafka_partition(no_key, everyone, [2, 4]) for _ in range(50)} <= {2, 4}
        assert librdkafka_partition(no_key, everyone, []) in everyone


def test_kafka_python_source_waits_without_kafka_pythons_spin_on_short_timeouts() -> None:
    """kafka-python's poll(2) spins for its last milliseconds: a short wait is poll(0), a wait on the
    client's sockets and poll(0) again; a long one is kafka-python's own poll."""
    consumer = FetchingConsumer([{}, {("in", 0): [7]}])
    source = KafkaPythonSource(consumer, WorkerSettings(metrics_port=0))
    assert source.poll(2, 10) == [7]
    assert consumer.timeouts == [0, 0] and consumer.waits == [2]
    assert source.poll(0, 10) == [] and consumer.timeouts[-1] == 0 and consumer.waits == [2]  # no wait at 0
    assert source.poll(200, 10) == [] and consumer.timeouts[-1] == 200 and consumer.waits == [2]
    consumer.fetches = [{("in", 0): [8]}]
    assert source.poll(5, 10) == [8] and consumer.waits == [2]  # records at once: no wait
