"""kafka-python behind the worker's client interface (worker/kafka/protocol.py): the default transport."""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.conn import BrokerConnection
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    CorruptRecordError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    RebalanceInProgressError,
    SaslAuthenticationFailedError,
    UnsupportedCodecError,
)
from kafka.protocol.metadata import MetadataRequest
from kafka.record.default_records import DefaultRecord, DefaultRecordBatch
from kafka.record.util import decode_varint
from kafka.structs import OffsetAndMetadata

from worker.kafka.connection import KafkaConnection
from worker.kafka.diagnose import addresses, certificate_refused, explain_failure, sasl_refused, where
from worker.kafka.protocol import (
    COMMIT_TIMEOUT_S,
    CommitRejected,
    KafkaConfigError,
    Message,
    OutputRefused,
    Partitions,
    StartupError,
    log_failed_commit,
    unreachable,
)
from worker.kafka.records import read_batches_whole
from worker.kafka.unpack import UnpackBudgetSpent, start_poll, unpack_within_limits
from worker.settings import WorkerSettings

log = logging.getLogger("worker")
CHECK_TIMEOUT_S = 10.0  # per bootstrap server: a connection, a login, one metadata request


def connection_options(c: KafkaConnection) -> dict[str, object]:
    """The connection in kafka-python's option names, for its consumer, producer and admin client."""
    options: dict[str, object] = {
        "bootstrap_servers": list(c.bootstrap_servers),
        "security_protocol": c.security_protocol,
    }
    if c.sasl_mechanism:
        options.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.sasl_username,
                       sasl_plain_password=c.password())  # fmt: skip
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(c, name) is not None:
            options[name] = str(getattr(c, name))
    return options


class _LastWarning(logging.Handler):
    """Keeps the last warning of kafka-python's producer (e.g. NotEnoughReplicasError, retrying): it
    logs its retriable errors and reports none per record."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()[:300]


_PRODUCER_WARNINGS = _LastWarning()
logging.getLogger("kafka.producer").addHandler(_PRODUCER_WARNINGS)


@contextmanager
def connection_errors_said_once() -> Iterator[None]:
    """kafka-python logs each failed connection attempt at ERROR while it looks for a broker (a
    dozen lines for a wrong address); the start-up error says it once. Shown at --log-level DEBUG."""
    logger = logging.getLogger("kafka")
    if logger.getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def build(s: WorkerSettings) -> tuple[KafkaPythonSource, KafkaPythonSink]:
    read_header_keys_leniently()
    unpack_within_limits()
    read_batches_whole()
    with connection_errors_said_once():
        return _build(s)


def _build(s: WorkerSettings) -> tuple[KafkaPythonSource, KafkaPythonSink]:
    check_connection(s)
    common = connection_options(s.connection())
    try:
        consumer = KafkaConsumer(
            group_id=s.group_id,
            client_id=f"{s.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            max_poll_records=s.max_poll_records,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            receive_message_max_bytes=32 * 1024 * 1024,  # must exceed fetch_max_bytes plus headers
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            group_instance_id=s.group_instance_id,
            max_poll_interval_ms=max(300_000, s.output_timeout_ms() + 60_000),  # a flush may wait that long
            **common,
        )
        producer = KafkaProducer(
            client_id=f"{s.group_id}-producer",
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            enable_idempotence=True,  # a retry after a lost acknowledgement writes no duplicate
            delivery_timeout_ms=s.output_timeout_ms(),
            max_block_ms=s.output_timeout_ms(),  # send() waits out a full buffer as long as an output may
            max_in_flight_requests_per_connection=1,  # kafka-python's idempotence requires it
            partitioner=librdkafka_partition,
            **common,
        )
    except NoBrokersAvailable as exc:
        raise unreachable(s, exc) from None
    return KafkaPythonSource(consumer, s), KafkaPythonSink(producer)


def librdkafka_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """librdkafka's default partitioner ("consistent_random"), for kafka-python: a keyed output goes
    to CRC-32(key) mod the partition count, one without a key (or with an empty one) to a random
    available partition. Both transports then put a key on the same partition, and zlib's CRC-32 in C
    saves kafka-python's murmur2 in Python: about 3 us of the 20-25 us of CPU each output costs it.
    Java clients hash with murmur2, so they may place the same key elsewhere."""
    if not key:
        return random.choice(available or all_partitions)
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


def check_connection(s: WorkerSettings) -> None:
    """Connect to a bootstrap server, log in and fetch metadata once, within CHECK_TIMEOUT_S each, or
    raise what went wrong (diagnose.py). Without it a refused login never ends: kafka-python's
    clients retry it forever and log the cause only as a reconnect error."""
    failures: list[StartupError] = []
    for host, port in addresses(s):
        error = _first_request(s, host, port)
        if error is None:
            return
        failures.append(_explain(s, host, port, error))
    raise next((f for f in failures if isinstance(f, KafkaConfigError)), failures[0])


class _RecordingConnection(BrokerConnection):
    """A BrokerConnection that keeps the errors it closes with: kafka-python closes a connection on a
    refused login or a broker that hangs up, and only logs why."""

    def __init__(self, *args, **kwargs) -> None:
        self.errors: list[BaseException] = []
        super().__init__(*args, **kwargs)

    def close(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.errors.append(error)
        super().close(error)


def _first_request(s: WorkerSettings, host: str, port: int) -> BaseException | None:
    options = {k: v for k, v in connection_options(s.connection()).items() if k != "bootstrap_servers"}
    conn = _RecordingConnection(host, port, socket.AF_UNSPEC, client_id=f"{s.group_id}-check",
                                request_timeout_ms=CHECK_TIMEOUT_S * 1000, **options)  # fmt: skip
    try:
        if not conn.connect_blocking(timeout=CHECK_TIMEOUT_S):
            return _most_telling(conn.errors)
        return _metadata(conn)
    except Exception as exc:  # kafka-python raises a failed certificate check out of connect()
        return exc
    finally:
        conn.close()


def _metadata(conn: BrokerConnection) -> BaseException | None:
    """One metadata request: a SASL listener lets a client without a login connect and ask for its
    API versions, and hangs up only at the first real request."""
    future = conn.send(MetadataRequest[0]([]), blocking=True)
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    while not future.is_done and time.monotonic() < deadline:
        for response, waiting in conn.recv():
            waiting.success(response)
        time.sleep(0.02)
    if not future.is_done:
        return KafkaTimeoutError(f"no metadata within {CHECK_TIMEOUT_S:.0f} s")
    return future.exception if future.failed() else None


def _most_telling(errors: list[BaseException]) -> BaseException:
    """A refused login beats the connection errors of the addresses tried after it (localhost is
    ::1 and 127.0.0.1)."""
    for error in errors:
        if not isinstance(error, KafkaConnectionError):
            return error
    return errors[0] if errors else KafkaConnectionError("no connection")


def _explain(s: WorkerSettings, host: str, port: int, error: BaseException) -> StartupError:
    if isinstance(error, SaslAuthenticationFailedError):
        return sasl_refused(s, where(host, port), "SaslAuthenticationFailed")
    if isinstance(error, ssl.SSLCertVerificationError):
        return certificate_refused(host, port, error.verify_message or str(error))
    return explain_failure(s, host, port, error)


class KafkaPythonSource:
    """kafka-python's consumer, handed out `max_records` at a time from everything it has fetched.

    kafka-python sends the next fetch for a partition only once the records of the last one
    are all taken, and only from inside poll(). A poll that takes part of a fetch therefore
    leaves the next fetch unsent, and the poll after the last part waits a round trip for it
    (measured on 2 cores, 20,000-record drains, medians of four runs alternating old and new:
    15.4k -> 20.0k records/s, and 13.8k -> 17.0k in a second set).
    So this drains kafka-python's buffer in one poll (which sends the next fetch at once,
    overlapping it with our work) and keeps the records here. Rebalance callbacks run only
    inside kafka-python's poll, which is called only once these are all handed out, so no
    record of a revoked partition is handed out after its revocation.
    """

    DRAIN = 1_000_000  # records per kafka-python poll: all it holds (at most one fetch, fetch_max_bytes)

    def __init__(self, consumer: KafkaConsumer, s: WorkerSettings) -> None:
        self.consumer = consumer
        self.s = s
        self._fetched: list = []
        self._next = 0

    def subscribe(
        self,
        topics: list[str],
        on_assigned: Callable[[Partitions], None],
        on_revoked: Callable[[Partitions], None],
    ) -> None:
        self.consumer.subscribe(topics, listener=_Listener(on_assigned, on_revoked))

    def poll(self, timeout_ms: int, max_records: int) -> list:
        if self._next >= len(self._fetched):
            self._fetched = []  # handed out: not held through the next fetch
            start_poll(max(self.s.max_unpacked_bytes, self.s.max_message_bytes))
            try:
                polled = self._poll_consumer(timeout_ms)
            except UnpackBudgetSpent as exc:
                return self._fetch_again(exc)
            except (CorruptRecordError, UnsupportedCodecError) as exc:
                return self._skip_unreadable(exc)
            self._fetched = [m for messages in polled.values() for m in messages]
            self._next = 0
        start, self._next = self._next, min(self._next + max_records, len(self._fetched))
        return self._fetched[start : self._next]

    SPIN_FREE_BELOW_MS = 50

    def _poll_consumer(self, timeout_ms: int) -> dict:
        """kafka-python's poll, without its busy wait on short timeouts.

        KafkaConsumer.poll(timeout) truncates the time left to whole milliseconds at each of its
        levels, so it waits in select() for all but the last 1-2 ms and spends those spinning through
        select(0): a poll of 2 ms (the loop's while a batch is being scored) is all spin, and at
        1,000 records/s the loop's thread used 45 % of a core, beside the scoring thread it slowed.
        A short wait is therefore a poll that does not block, one wait for the sockets (the
        client's own poll: it returns when a response comes in) and a second poll that takes what
        came. Longer waits (idle, joining the group) keep kafka-python's poll, whose spin is then a
        small share, and which runs the group protocol with time to wait for its answers."""
        if timeout_ms >= self.SPIN_FREE_BELOW_MS:
            return self.consumer.poll(timeout_ms=timeout_ms, max_records=self.DRAIN)
        polled = self.consumer.poll(timeout_ms=0, max_records=self.DRAIN)
        if polled or timeout_ms <= 0:
            return polled
        self.consumer._client.poll(timeout_ms=timeout_ms)  # no public way to wait without the spin
        return self.consumer.poll(timeout_ms=0, max_records=self.DRAIN)

    def _skip_unreadable(self, exc: CorruptRecordError) -> list[Message]:
        """Records kafka-python cannot parse (a broken record; header keys that are not UTF-8 are read,
        see read_header_keys_leniently): handed on as messages that are dead-lettered, and the
        partition goes on after them. Without this, every poll raises again and the partition
        stops for good. kafka-python cannot read past a broken record within its record batch,
        so the rest of that batch goes with it, each offset its own dead letter."""
        found = unreadable_record(exc)
        if found is None:
            raise exc  # not a record we can point at: a real fault of the fetch
        tp, offset, key, value, timestamp, batch_end = found
        why = f"the Kafka client could not read this record: {exc}"
        skipped = [Message(tp.topic, tp.partition, offset, key, value, timestamp, unreadable=why)]
        after = f"the Kafka client could not read past the unreadable record at offset {offset} in its batch"
        skipped += [Message(tp.topic, tp.partition, o, None, None, -1, unreadable=after)
                    for o in range(offset + 1, batch_end)]  # fmt: skip
        log.warning("skipping unreadable record(s) %s:%d at offsets %d-%d (%s)",
                    tp.topic, tp.partition, offset, max(offset, batch_end - 1), exc)  # fmt: skip
        self.consumer.seek(tp, max(offset + 1, batch_end))
        return skipped

    def _fetch_again(self, exc: UnpackBudgetSpent) -> list[Message]:
        """This poll unpacked its share (worker/kafka/unpack.py): the batch it stopped at is fetched
        again by the next poll, after the records already handed out."""
        found = unreadable_record(exc)
        if found is None:
            raise exc
        tp, offset = found[0], found[1]
        log.debug("%s:%d: unpacking from offset %d waits for the next poll (%s)",
                  tp.topic, tp.partition, offset, exc)  # fmt: skip
        self.consumer.seek(tp, offset)
        # kafka-python would go on taking from the records it stopped in (none come: it loops
        # for ever), as the seek leaves the position where they are
        for frame in _frames(exc):
            part = frame.f_locals.get("self")
            if getattr(part, "topic_partition", None) == tp and callable(getattr(part, "drain", None)):
                part.drain()
        return []

    def commit(self, offsets: dict[tuple[str, int], int], wait: bool = True) -> None:
        exact = {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        if not wait:
            self.consumer.commit_async(exact, callback=_log_failed_commit)
            return
        try:
            self.consumer.commit(exact, timeout_ms=COMMIT_TIMEOUT_S * 1000)
        except (CommitFailedError, RebalanceInProgressError) as exc:
            raise CommitRejected(str(exc)) from None
        except KafkaTimeoutError:
            waited = f"{COMMIT_TIMEOUT_S:.0f} s"
            raise CommitRejected(f"no answer from the group coordinator within {waited}") from None

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def topics(self) -> set[str]:
        return set(self.consumer.topics())

    def _admin(self) -> KafkaAdminClient:
        options = connection_options(self.s.connection())
        return KafkaAdminClient(**options, client_id=f"{self.s.group_id}-admin")

    def create_topics(self, names: list[str]) -> None:
        admin = self._admin()
        try:
            admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=-1) for t in names])
        finally:
            admin.close()

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        admin = self._admin()
        try:
            responses = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        finally:
            admin.close()
        configs = {}
        for response in responses:
            for error_code, _, _, name, entries in response.resources:
                if not error_code:
                    configs[name] = {entry[0]: str(entry[1]) for entry in entries if entry[1] is not None}
        return configs

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class KafkaPythonSink:
    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self.max_record_bytes = producer.config["max_request_size"]

    def prepare(self, topics: list[str]) -> None:
        for topic in topics:
            self.producer.partitions_for(topic)  # blocks until the metadata is in (max_block_ms)

    def send(self, topic: str, key: bytes | None, value: bytes):
        try:
            return self.producer.send(topic, key=key, value=value)  # its future has succeeded()/exception
        except MessageSizeTooLargeError as exc:
            raise OutputRefused(str(exc)) from None

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        self.producer.close(timeout=timeout_s)

    def last_error(self) -> str | None:
        return _PRODUCER_WARNINGS.last


# partition, offset, key, value, timestamp, and the offset after the record's batch
Unreadable = tuple[TopicPartition, int, bytes | None, bytes | None, int, int]


def unreadable_record(exc: BaseException) -> Unreadable | None:
    """Where kafka-python was when it failed to parse a record, from the frames of the error and of
    the one it wraps; None if they do not say.

    kafka-python's error names neither partition nor offset, but its record reader (`_read_msg`)
    holds the offset, key and value it had read, its batch the batch's end, and its per-partition
    reader (`PartitionRecords`) the partition and the next offset to read."""
    tp, next_offset, batch_end, parsed = None, None, 0, None
    for f in _frames(exc):
        frame = f.f_locals
        owner = frame.get("self")
        if isinstance(getattr(owner, "topic_partition", None), TopicPartition):
            tp, next_offset = owner.topic_partition, getattr(owner, "next_fetch_offset", None)
        if isinstance(owner, DefaultRecordBatch):
            batch_end = owner.next_offset
        if f.f_code.co_name == "_read_msg" and isinstance(frame.get("offset"), int):
            parsed = (frame["offset"], frame.get("key"), frame.get("value"), frame.get("timestamp") or -1)
    if tp is None:
        return None
    if parsed is not None:
        return (tp, *parsed, batch_end)
    if isinstance(next_offset, int):
        return tp, next_offset, None, None, -1, batch_end
    return None


def _frames(exc: BaseException) -> Iterator[FrameType]:
    """The frames an error passed through, and those of the error it wraps, outermost first."""
    for error in (exc, exc.__context__, exc.__cause__):
        tb = error.__traceback__ if error is not None else None
        while tb is not None:
            yield tb.tb_frame
            tb = tb.tb_next


def read_header_keys_leniently() -> None:
    """Make kafka-python read a record whose header keys are not UTF-8 (it raises, and cannot read
    the rest of the record batch either), with those keys decoded with replacement characters.
    The worker reads no headers; librdkafka reads such records too."""
    if getattr(DefaultRecordBatch._read_msg, "lenient", False):
        return
    strict = DefaultRecordBatch._read_msg

    def _read_msg(batch: DefaultRecordBatch, decode_varint=decode_varint):
        try:
            return strict(batch, decode_varint)
        except UnicodeDecodeError:
            if batch.is_control_batch:
                raise
            return _read_msg_with_raw_header_keys(batch, decode_varint)

    _read_msg.lenient = True  # type: ignore[attr-defined]
    DefaultRecordBatch._read_msg = _read_msg


def _read_msg_with_raw_header_keys(batch: DefaultRecordBatch, decode_varint) -> DefaultRecord:
    """kafka-python's DefaultRecordBatch._read_msg (record format v2), header keys decoded leniently."""
    buffer, pos = batch._buffer, batch._pos

    def nullable_bytes(pos: int) -> tuple[bytes | None, int]:
        size, pos = decode_varint(buffer, pos)
        return (None, pos) if size < 0 else (bytes(buffer[pos : pos + size]), pos + size)

    length, pos = decode_varint(buffer, pos)
    start = pos
    _, pos = decode_varint(buffer, pos)  # attributes: unused in v2
    ts_delta, pos = decode_varint(buffer, pos)
    log_append = batch.timestamp_type == batch.LOG_APPEND_TIME
    timestamp = batch.max_timestamp if log_append else batch.first_timestamp + ts_delta
    offset_delta, pos = decode_varint(buffer, pos)
    key, pos = nullable_bytes(pos)
    value, pos = nullable_bytes(pos)
    count, pos = decode_varint(buffer, pos)
    headers = []
    for _ in range(max(0, count)):
        raw_key, pos = nullable_bytes(pos)
        header_value, pos = nullable_bytes(pos)
        headers.append(((raw_key or b"").decode("utf-8", "replace"), header_value))
    if count < 0 or pos - start != length:
        raise CorruptRecordError(f"record of {length} bytes read as {pos - start}")
    batch._pos = pos
    offset = batch.base_offset + offset_delta
    return DefaultRecord(length, offset, timestamp, batch.timestamp_type, key, value, headers)


def _log_failed_commit(offsets: dict, response: object) -> None:
    if isinstance(response, Exception):
        log_failed_commit(response)


class _Listener(ConsumerRebalanceListener):
    def __init__(
        self, on_assigned: Callable[[Partitions], None], on_revoked: Callable[[Partitions], None]
    ) -> None:
        self.on_assigned, self.on_revoked = on_assigned, on_revoked

    def on_partitions_revoked(self, revoked) -> None:
        self.on_revoked([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned) -> None:
        self.on_assigned([(tp.topic, tp.partition) for tp in assigned])


class KafkaPythonOffsets:
    """The lag probe's client (worker/lag.py): end offsets and the group's commits, asked of the
    broker. Its own consumer, used by the probe's thread only (a KafkaConsumer is not thread-safe);
    it has the group's id to read its commits but never subscribes, so it never joins the group."""

    def __init__(self, s: WorkerSettings, timeout_s: float) -> None:
        self.timeout_ms = int(timeout_s * 1000)
        self.consumer = KafkaConsumer(
            group_id=s.group_id,
            client_id=f"{s.group_id}-lag",
            enable_auto_commit=False,
            request_timeout_ms=self.timeout_ms,  # bounds end_offsets(), which takes no timeout of its own
            session_timeout_ms=min(6_000, self.timeout_ms - 1),  # must be below it; unused, as it never joins
            heartbeat_interval_ms=1_000,
            **connection_options(s.connection()),
        )

    def end_offsets(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        ends = self.consumer.end_offsets([TopicPartition(t, p) for t, p in partitions])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    def committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        out = {}
        for t, p in partitions:
            offset = self.consumer.committed(TopicPartition(t, p), timeout_ms=self.timeout_ms)
            if offset is not None:
                out[(t, p)] = offset
        return out

    def close(self) -> None:
        self.consumer.close(autocommit=False)
