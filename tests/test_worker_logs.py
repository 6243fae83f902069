"""The worker's logging: repeated connection errors of the Kafka clients are thinned, nothing else is."""

from __future__ import annotations

import logging

from worker.logs import RepeatThrottle

# How confluent-kafka hands librdkafka's lines to a Python logger.
RDKAFKA = "%s [%s] %s"
REFUSED = "[thrd:localhost:9092/bootstrap]: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_one_line_per_kind_and_interval_then_a_count_of_those_held_back() -> None:
    clock = Clock()
    throttle = RepeatThrottle(every_s=30, clock=clock)
    shown = []
    for second in range(70):  # two lines a second, as kafka-python logs a refused connection
        clock.now = float(second)
        for text in ("%s: Connect attempt returned error %s. Disconnecting.", "%s: Closing connection. %s"):
            r = record("kafka.conn", text, "<BrokerConnection localhost:9092>", "111")
            if throttle.filter(r):
                shown.append((second, r.getMessage()))
    assert [s for s, _ in shown] == [0, 0, 30, 30, 60, 60]
    conn = "<BrokerConnection localhost:9092>"
    assert shown[0][1] == f"{conn}: Connect attempt returned error 111. Disconnecting."
    assert shown[2][1].endswith("Disconnecting. (29 more like it since the last one shown)")
    assert shown[3][1].startswith(f"{conn}: Closing connection. 111 (29 more")


def test_another_kind_of_client_error_shows_at_once() -> None:
    throttle = RepeatThrottle(every_s=30, clock=Clock())
    assert throttle.filter(record("kafka.conn", "%s: Closing connection. %s", "conn", "ECONNREFUSED"))
    assert not throttle.filter(record("kafka.conn", "%s: Closing connection. %s", "conn", "ECONNREFUSED"))
    assert throttle.filter(record("kafka.conn", "%s: SSL handshake failed: %s", "conn", "bad certificate"))


def test_librdkafka_facilities_are_thinned_apart() -> None:
    throttle = RepeatThrottle(every_s=30, clock=Clock())
    assert throttle.filter(record("librdkafka", RDKAFKA, "FAIL", "rdkafka#consumer-1", REFUSED))
    assert not throttle.filter(record("librdkafka", RDKAFKA, "FAIL", "rdkafka#producer-2", REFUSED))
    # A failed commit or a refused login is its own line, not swallowed by the connection errors.
    consumer = "rdkafka#consumer-1"
    assert throttle.filter(record("librdkafka", RDKAFKA, "COMMITFAIL", consumer, "Offset commit failed"))
    assert throttle.filter(record("librdkafka", RDKAFKA, "SASL", consumer, "authentication failed"))


def test_the_workers_own_lines_and_info_lines_are_never_held_back() -> None:
    throttle = RepeatThrottle(every_s=30, clock=Clock())
    for _ in range(5):
        assert throttle.filter(record("worker.app", "commit skipped", level=logging.WARNING))
        assert throttle.filter(record("kafka.conn", "connecting to %s", "localhost", level=logging.INFO))
