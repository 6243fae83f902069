"""confluent-kafka (librdkafka) behind the worker's client interface (worker/kafka/protocol.py):
`--transport confluent`.

Fetching, protocol parsing, batching and retries run in librdkafka's C threads, not under the
GIL, which leaves the loop's thread to decoding, routing and publishing. Semantics match the
kafka-python side: auto-commit off, synchronous commits of exact offsets, rebalance callbacks
inside poll (librdkafka assigns and unassigns after them), acks=all, and a delivery report per
output that the publisher checks after each flush.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from worker.kafka.connection import KafkaConnection
from worker.kafka.diagnose import (
    addresses,
    certificate_refused,
    explain_failure,
    sasl_refused,
    tls_verify_problem,
    where,
)
from worker.kafka.protocol import (
    CommitRejected,
    KafkaConfigError,
    Message,
    OutputRefused,
    Partitions,
    ProducerFenced,
    StartupError,
    TransactionFailed,
    log_failed_commit,
    unreachable,
)
from worker.settings import TRANSACTION_SLACK_MS, WorkerSettings

log = logging.getLogger("worker")
MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default, stated: the publisher sizes outputs below it
CHECK_TIMEOUT_S = 10.0  # the start-up connection check, all bootstrap servers together

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
except ImportError:  # an optional extra
    Consumer = None  # type: ignore[assignment,misc]


def connection_options(c: KafkaConnection) -> dict[str, object]:
    """The connection in librdkafka's option names, for its consumer, producer and admin client."""
    options: dict[str, object] = {
        "bootstrap.servers": ",".join(c.bootstrap_servers),
        "security.protocol": c.security_protocol.lower(),
    }
    if c.sasl_mechanism:
        options.update({"sasl.mechanism": c.sasl_mechanism, "sasl.username": c.sasl_username or "",
                        "sasl.password": c.password() or ""})  # fmt: skip  # librdkafka takes no None
    for name, path in (("ssl.ca.location", c.ssl_cafile), ("ssl.certificate.location", c.ssl_certfile),
                       ("ssl.key.location", c.ssl_keyfile)):  # fmt: skip
        if path is not None:
            options[name] = str(path)
    return options


def config(s: WorkerSettings) -> dict[str, object]:
    """What every client of this run is given: the connection, and a logger."""
    # librdkafka's log lines go through Python logging (worker/logs.py sets the level), not stderr.
    return {**connection_options(s.connection()), "logger": logging.getLogger("librdkafka")}


def build(s: WorkerSettings) -> tuple[ConfluentSource, ConfluentSink]:
    if Consumer is None:
        raise StartupError(
            "--transport confluent needs the confluent-kafka package: "
            "pip install 'vae-anomaly-worker[confluent]' (or use --transport kafka-python)"
        )
    check_connection(s)
    common = config(s)
    consumer_limits = fetch_limits(s)
    consumer = Consumer(
        {
            **common,
            "group.id": s.group_id,
            "client.id": f"{s.group_id}-consumer",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": s.auto_offset_reset,
            "session.timeout.ms": s.session_timeout_ms,
            "heartbeat.interval.ms": s.heartbeat_interval_ms,
            **({"group.instance.id": s.group_instance_id} if s.group_instance_id else {}),
            "max.poll.interval.ms": max(
                300_000, s.output_timeout_ms() + 60_000
            ),  # a flush may wait that long
            **consumer_limits,
            "enable.partition.eof": False,
            "on_commit": _log_failed_commit,  # the answer to an asynchronous commit
            **({"isolation.level": "read_committed"} if s.exactly_once else {}),
        }
    )
    errors = ProducerErrors()
    producer = Producer(
        {
            **common,
            "client.id": f"{s.group_id}-producer",
            "acks": "all",
            "enable.idempotence": True,  # a retry after a lost acknowledgement writes no duplicate
            "delivery.timeout.ms": s.output_timeout_ms(),
            "linger.ms": 5,
            "batch.size": 256 * 1024,
            "queue.buffering.max.messages": 1_000_000,
            "message.max.bytes": MESSAGE_MAX_BYTES,
            "error_cb": errors,
            **(transactional_config(s) if s.exactly_once else {}),
        }
    )
    source = ConfluentSource(consumer, common, consumer_limits["receive.message.max.bytes"])
    try:
        source.topics()  # fail here, with the usual message, if no broker answers
    except KafkaException as exc:
        raise unreachable(s, exc) from None
    if s.exactly_once:
        sink = ConfluentTransactionalSink(producer, MESSAGE_MAX_BYTES, s.output_timeout_ms() / 1000,
                                          s.producer_transactional_id(), errors)  # fmt: skip
        sink.init_transactions()
        return source, sink
    return source, ConfluentSink(producer, MESSAGE_MAX_BYTES, s.output_timeout_ms() / 1000, errors)


def fetch_limits(s: WorkerSettings) -> dict[str, int]:
    """The consumer's fetch sizes. librdkafka caps what a zstd batch may unpack to at
    receive.message.max.bytes (a larger one is a per-record error: an `unreadable` dead letter), so
    that is --max-unpacked-bytes, but never below a whole fetch response (a larger response breaks
    the connection, again and again). gzip, lz4 and snappy batches are unpacked whole whatever these
    say (worker/source.py, check_unpacking)."""
    return {
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        "receive.message.max.bytes": max(s.max_unpacked_bytes, FETCH_MAX_BYTES + 512),
    }


FETCH_MAX_BYTES = 16 * 1024 * 1024


# What librdkafka reports for a record batch it could not read (at the batch's first offset):
# ConfluentSource dead-letters it offset by offset and seeks past it.
BATCH_ERRORS = ("_BAD_COMPRESSION", "_BAD_MSG", "_NOT_IMPLEMENTED", "_CRIT_SYS_RESOURCE")


# A transaction lasts from its first output to its commit: --commit-interval-ms, scoring what is in
# hand, and a flush that may wait as long as an output may (settings.output_timeout_ms: librdkafka
# requires the delivery timeout within the transaction's). The broker aborts one that lasts longer
# than --transaction-timeout-ms (and refuses one over its transaction.max.timeout.ms, 15 min by default).
INIT_TIMEOUT_S = 60.0  # init_transactions: the coordinator may first create its topic


def transactional_config(s: WorkerSettings) -> dict[str, object]:
    """The producer's transaction settings (exactly-once): its transactional.id and timeout."""
    return {"transactional.id": s.producer_transactional_id(),
            "transaction.timeout.ms": s.transaction_timeout_ms}  # fmt: skip


class ProducerErrors:
    """The producer's error_cb: librdkafka reports no error per record, only here. Keeps the last one
    (the stalled-flush warning names it) and a fatal one (exactly-once: a produce() after it says only
    _FATAL)."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.fatal: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.last = err.str()[:300]
        if err.fatal():
            self.fatal.append(err)


def check_connection(s: WorkerSettings) -> None:
    """Fetch metadata once with a client of its own, within CHECK_TIMEOUT_S, or raise what went
    wrong (diagnose.py). librdkafka reports why a connection failed only to an error callback (the
    metadata call itself says "transport failure"), and a refused login is retried forever."""
    errors: list[KafkaError] = []
    try:
        client = Producer({**config(s), "client.id": f"{s.group_id}-check", "error_cb": errors.append,
                           "logger": _check_logger()})  # fmt: skip
    except KafkaException as exc:  # librdkafka checks some settings (the TLS files) when it starts
        detail = exc.args[0].str() if exc.args else exc
        raise KafkaConfigError(f"the Kafka client refused the security settings: {detail}") from None
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            client.list_topics(timeout=1.0)
            return
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args else exc
        client.poll(0)  # serves error_cb
        problem = _classify(s, errors)
        if isinstance(problem, KafkaConfigError):
            raise problem
    raise _classify(s, errors, probe_all=True) or unreachable(s, last)


def _check_logger() -> logging.Logger:
    """The check's client logs its failed attempts only at --log-level DEBUG: the error says it once."""
    quiet = logging.getLogger("librdkafka.check")
    shown = logging.getLogger("librdkafka").isEnabledFor(logging.DEBUG)
    quiet.setLevel(logging.DEBUG if shown else logging.CRITICAL)
    return quiet


_ADDRESS = re.compile(r"^\w+://(\[[^\]]+\]|[^:/]+):(\d+)/")
_SASL_REASON = re.compile(r"SASL authentication error: (.*?)(?: \(after \d+ms.*)?$")


def _classify(s: WorkerSettings, errors: list[KafkaError], probe_all: bool = False) -> StartupError | None:
    """What librdkafka's errors say, asking the listener itself where they do not say why; None while
    they say nothing yet. `probe_all`: the time is up, so probe every bootstrap server."""
    for err in errors:
        text = err.str()
        host, port = _address(s, text)
        if err.code() == KafkaError._AUTHENTICATION and "SASL authentication error" in text:
            reason = _SASL_REASON.search(text)
            return sasl_refused(s, where(host, port), reason.group(1) if reason else err.name())
        if "certificate verify failed" in text:
            verify = tls_verify_problem(host, port, s.ssl_cafile) or "certificate verify failed"
            return certificate_refused(host, port, verify)
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL) or "PLAINTEXT broker listener" in text:
            return explain_failure(s, host, port, text)  # a handshake that failed: which side is wrong?
    if probe_all or any(err.code() == KafkaError._ALL_BROKERS_DOWN for err in errors):
        said = [err.str() for err in errors if err.code() != KafkaError._ALL_BROKERS_DOWN]
        detail = said[0] if said else "no answer"
        found = [explain_failure(s, host, port, detail) for host, port in addresses(s)]
        return next((f for f in found if isinstance(f, KafkaConfigError)), found[0] if probe_all else None)
    return None


def _address(s: WorkerSettings, text: str) -> tuple[str, int]:
    """The broker an error names ("sasl_ssl://host:9093/bootstrap: ..."), else the first bootstrap server."""
    match = _ADDRESS.match(text)
    return (match.group(1).strip("[]"), int(match.group(2))) if match else addresses(s)[0]


def _log_failed_commit(err: KafkaError | None, partitions: list) -> None:
    if err is not None:
        log_failed_commit(err)


def _message(m) -> Message:
    return Message(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])


class ConfluentSource:
    def __init__(self, consumer: Consumer, common: dict[str, object], zstd_limit: int = 0) -> None:
        self.consumer = consumer
        self.common = common
        self.zstd_limit = zstd_limit  # named in the dead letter of a batch it refused
        self.rebalances = 0  # callbacks run inside consume(): messages read before one are stale
        self._walking: dict[tuple[str, int], int] = {}  # next offset to try past an unreadable batch

    def subscribe(
        self,
        topics: list[str],
        on_assigned: Callable[[Partitions], None],
        on_revoked: Callable[[Partitions], None],
    ) -> None:
        def assigned(_consumer, partitions) -> None:
            self.rebalances += 1
            self._walking.clear()
            on_assigned([(tp.topic, tp.partition) for tp in partitions])

        def revoked(_consumer, partitions) -> None:
            self.rebalances += 1
            on_revoked([(tp.topic, tp.partition) for tp in partitions])

        self.consumer.subscribe(topics, on_assign=assigned, on_revoke=revoked)

    def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        # consume() waits for a full batch until its timeout: take what is queued without waiting,
        # and when nothing is, wait for one message only, so a lone record is not held back
        # (measured: p99 produce->alert 247 ms with a plain consume(2000, timeout) at 1,000 rec/s).
        got = self._consume(max_records, 0.0, [])
        if not got:
            got = self._consume(1, timeout_ms / 1000.0, got)
            if got and max_records > 1:
                got = self._consume(max_records - 1, 0.0, got)
        out: list[Message] = []
        walked: set[tuple[str, int]] = set()  # partitions sought past a bad batch in this poll
        for m in got:
            err = m.error()
            if err is None and not self._walking:  # the common case: nothing more to look at
                out.append(_message(m))
                continue
            tp = (m.topic(), m.partition())
            if tp in walked:
                continue  # fetched before the seek: read again from there
            if err is None:
                self._walking.pop(tp, None)
                out.append(_message(m))
            elif err.fatal():
                raise KafkaException(err)
            elif err.name() in BATCH_ERRORS and m.topic() and m.offset() >= 0:
                out.append(self._step_past(m, err))
                if tp in self._walking:  # sought: what follows in `got` is fetched again
                    walked.add(tp)
            # else transient (librdkafka retries); reported in its own log
        return out

    def _step_past(self, m, err: KafkaError) -> Message:
        """A dead letter for one offset of a batch librdkafka could not read, and a seek to the next.
        librdkafka reports the batch's first offset and fetches the batch again, for ever: so the
        worker steps through it one offset at a time (each fetch from inside the batch returns it
        whole, reported at its first offset again) until the broker returns what follows it."""
        tp = (m.topic(), m.partition())
        offset = max(m.offset(), self._walking.get(tp, -1))
        why = (f"the Kafka client could not read the record batch at offset {m.offset()} that holds "
               f"this offset ({err.name()}: {err.str()})")  # fmt: skip
        if err.name() == "_BAD_COMPRESSION":
            why += (f"; a zstd batch that unpacks past {self.zstd_limit:,} bytes (--max-unpacked-bytes, "
                    "or one fetch response if larger) is refused this way")  # fmt: skip
        if offset == m.offset():
            log.warning("skipping unreadable record batch %s:%d at offset %d (%s)", *tp, offset, err.str())
        try:
            self.consumer.seek(TopicPartition(m.topic(), m.partition(), offset + 1))
            self._walking[tp] = offset + 1
        except KafkaException as exc:  # no longer ours (a rebalance): its next owner reads it again
            self._walking.pop(tp, None)
            log.warning("could not seek past %s:%d at offset %d (%s)", *tp, offset, exc)
        return Message(m.topic(), m.partition(), offset, None, None, -1, unreadable=why)

    def _consume(self, n: int, timeout_s: float, before: list) -> list:
        """`before` plus what one consume() returns; `before` is dropped if a rebalance ran meanwhile
        (its partitions may be another worker's now; they are re-read from the last commit)."""
        generation = self.rebalances
        got = self.consumer.consume(num_messages=n, timeout=timeout_s)
        return got if self.rebalances != generation else before + got

    def commit(self, offsets: dict[tuple[str, int], int], wait: bool = True) -> None:
        try:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=not wait
            )
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if err is not None else None
            rebalancing = code in (
                KafkaError.REBALANCE_IN_PROGRESS,
                KafkaError.ILLEGAL_GENERATION,
                KafkaError.UNKNOWN_MEMBER_ID,
                KafkaError._NO_OFFSET,
            )
            # librdkafka does not call these retriable, but they only say the coordinator is out
            # of reach right now (a broker down, a stop while it is away).
            coordinator_away = code in (
                KafkaError._WAIT_COORD,
                KafkaError._TRANSPORT,
                KafkaError._ALL_BROKERS_DOWN,
                KafkaError._TIMED_OUT,
                KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.NOT_COORDINATOR,
                # a new coordinator still reading the offsets topic (make chaos, leader-kill: it
                # stopped the worker from inside a rebalance)
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                KafkaError.REQUEST_TIMED_OUT,
            )
            # Retriable (a coordinator moving, a timeout): the next commit covers these offsets, as
            # kafka-python's own retry loop would.
            if rebalancing or coordinator_away or (err is not None and err.retriable()):
                raise CommitRejected(str(exc)) from None
            raise

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def topics(self) -> set[str]:
        return set(self.consumer.list_topics(timeout=10).topics)

    def create_topics(self, names: list[str]) -> None:
        admin = AdminClient(self.common)
        futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=-1) for t in names])
        for future in futures.values():
            future.result(timeout=30)

    def topic_configs(self, topics: list[str]) -> dict[str, dict[str, str]]:
        admin = AdminClient(self.common)  # kept until the answers are in: its handle serves the futures
        futures = admin.describe_configs([ConfigResource("topic", t) for t in topics])
        configs = {}
        for resource, future in futures.items():
            try:
                entries = future.result(timeout=30)
            except KafkaException:  # a topic it cannot tell (missing, not allowed): left out
                continue
            configs[resource.name] = {n: str(e.value) for n, e in entries.items() if e.value is not None}
        return configs

    def group_metadata(self) -> object:
        return self.consumer.consumer_group_metadata()

    def close(self) -> None:
        self.consumer.close()


class _Delivery:
    """The delivery report of one output, filled in by librdkafka's callback during poll/flush."""

    __slots__ = ("exception", "is_done")

    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None

    def done(self, err, _msg) -> None:
        self.is_done = True
        if err is not None:
            self.exception = KafkaException(err)

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None


class ConfluentSink:
    def __init__(self, producer: Producer, max_record_bytes: int, send_timeout_s: float,
                 errors: ProducerErrors | None = None) -> None:  # fmt: skip
        self.producer = producer
        self.errors = errors if errors is not None else ProducerErrors()  # filled by the producer's error_cb
        self.max_record_bytes = max_record_bytes
        self.send_timeout_s = send_timeout_s  # as kafka-python's max_block_ms
        self._sent = 0

    def prepare(self, topics: list[str]) -> None:
        for topic in topics:
            self.producer.list_topics(topic, timeout=10)

    def send(self, topic: str, key: bytes | None, value: bytes) -> _Delivery:
        delivery = _Delivery()
        deadline = time.monotonic() + self.send_timeout_s
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=delivery.done)
                break
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise OutputRefused(str(exc)) from None
                raise
            except BufferError:  # the local queue is full: let librdkafka send, then retry
                if time.monotonic() > deadline:
                    raise BufferError(
                        f"the producer queue stayed full for {self.send_timeout_s:.0f} s: is the broker up?"
                    ) from None
                self.producer.poll(0.1)
        self._sent += 1
        if self._sent % 1000 == 0:
            self.producer.poll(0)  # serve delivery reports as we go, not all at the flush
        return delivery

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)

    def close(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)

    def last_error(self) -> str | None:
        return self.errors.last


class ConfluentTransactionalSink(ConfluentSink):
    """The producer of exactly-once (worker/transaction.py opens and commits its transactions), with
    librdkafka's errors said as ProducerFenced or TransactionFailed."""

    # Codes that say another producer took this transactional.id over.
    FENCED = frozenset({"_FENCED", "PRODUCER_FENCED"})

    def __init__(self, producer: Producer, max_record_bytes: int, send_timeout_s: float,
                 transactional_id: str, errors: ProducerErrors | None = None) -> None:  # fmt: skip
        super().__init__(producer, max_record_bytes, send_timeout_s, errors)
        self.transactional_id = transactional_id
        self.fatal = self.errors.fatal
        self.timeout_s = send_timeout_s + TRANSACTION_SLACK_MS / 1000

    def init_transactions(self) -> None:
        """Register the transactional.id: fences an earlier producer with it and aborts its open
        transaction, at start, before anything is read."""
        try:
            self._call("init_transactions", self.producer.init_transactions, INIT_TIMEOUT_S)
        except ProducerFenced:
            raise
        except TransactionFailed as exc:
            text = str(exc)
            if "AUTHORIZATION" in text.upper() or "INVALID_TRANSACTION_TIMEOUT" in text.upper():
                raise KafkaConfigError(
                    f"the broker refused transactional.id {self.transactional_id!r} ({text}): check its "
                    "ACLs (--transactional-id / WORKER_TRANSACTIONAL_ID) and that --transaction-timeout-ms "
                    "is within its transaction.max.timeout.ms"
                ) from None
            raise StartupError(
                f"could not start transactions as {self.transactional_id!r} ({text}); does the broker "
                "take transactions (transaction.state.log.replication.factor at most the brokers up)?"
            ) from None

    def send(self, topic: str, key: bytes | None, value: bytes) -> _Delivery:
        try:
            return super().send(topic, key, value)
        except (KafkaException, SystemError) as exc:
            raise self._said(exc, "produce") from None

    def begin_transaction(self) -> None:
        self._call("begin_transaction", self.producer.begin_transaction)

    def send_offsets_to_transaction(self, offsets: dict[tuple[str, int], int], metadata: object) -> None:
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        self._call("send_offsets_to_transaction", self.producer.send_offsets_to_transaction,
                   positions, metadata, self.timeout_s)  # fmt: skip

    def commit_transaction(self) -> None:
        self._call("commit_transaction", self.producer.commit_transaction, self.timeout_s)

    def abort_transaction(self) -> None:
        self._call("abort_transaction", self.producer.abort_transaction, self.timeout_s)

    def _call(self, what: str, call: Callable[..., object], *args: object) -> None:
        """`call(*args)`, again after an error librdkafka calls retriable (a coordinator moving), until
        the transaction's timeout."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                call(*args)
                return
            except (KafkaException, SystemError) as exc:  # SystemError: a callback's error beside it
                err = _kafka_error(exc)
                again = err is not None and err.retriable() and not err.txn_requires_abort()
                if not again or time.monotonic() > deadline:
                    raise self._said(exc, what) from None
                log.debug("%s: %s; retrying", what, err.str())
                time.sleep(0.2)

    def _said(self, exc: Exception, what: str) -> Exception:
        err = _kafka_error(exc)
        if err is None or err.code() == KafkaError._FATAL:  # which fatal error: poll() says it
            try:
                self.producer.poll(0)  # serves error_cb, or raises the fatal error itself
            except (KafkaException, SystemError) as raised:
                err = _kafka_error(raised) or err
            err = self.fatal[0] if self.fatal else err
        if err is None:
            return TransactionFailed(f"{what}: {exc}")
        name = err.name()
        if name in self.FENCED or (name == "INVALID_PRODUCER_EPOCH" and err.fatal()):
            return ProducerFenced(
                f"another producer took over transactional.id {self.transactional_id!r} ({what}: "
                f"{err.str()}): this worker was restarted elsewhere, or a second worker has the same id "
                "(give each worker of a host its own --transactional-id / WORKER_TRANSACTIONAL_ID)"
            )
        return TransactionFailed(f"{what}: {name}: {err.str()}")


def _kafka_error(exc: BaseException | None) -> KafkaError | None:
    """The KafkaError of a KafkaException, also of one a SystemError wraps (confluent-kafka raises
    that when a callback failed during the call)."""
    for e in (exc, getattr(exc, "__cause__", None), getattr(exc, "__context__", None)):
        if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError):
            return e.args[0]
    return None


class ConfluentOffsets:
    """The lag probe's client (worker/lag.py): end offsets and the group's commits, asked of the
    broker (cached=False: librdkafka's cached high watermark is the one of its last fetch). Its own
    consumer, used by the probe's thread only; it has the group's id to read its commits but never
    subscribes, so it never joins the group."""

    def __init__(self, s: WorkerSettings, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        group = {"group.id": s.group_id, "client.id": f"{s.group_id}-lag", "enable.auto.commit": False}
        self.consumer = Consumer({**config(s), **group})

    def end_offsets(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        self.consumer.poll(0)  # serves librdkafka's log lines and errors, which queue up until polled
        out = {}
        for t, p in partitions:
            _low, high = self.consumer.get_watermark_offsets(
                TopicPartition(t, p), timeout=self.timeout_s, cached=False
            )
            if high >= 0:
                out[(t, p)] = high
        return out

    def committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        got = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.error is None and tp.offset >= 0}

    def close(self) -> None:
        self.consumer.close()
