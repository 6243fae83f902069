"""The worker's logging: repeated connection errors of the Kafka clients are thinned, nothing else is."""

from __future__ import annotations

import logging

from worker.logs import RepeatThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, level: int = logging.ERROR, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_one_connection_error_per_interval_then_a_count_of_those_held_back() -> None:
    clock = Clock()
    throttle = RepeatThrottle(every_s=30, clock=clock)
    shown = []
    for second in range(70):  # two lines a second, as kafka-python logs a refused connection
        clock.now = float(second)
        for text in ("Connect attempt to %s returned error 111", "Closing connection to %s"):
            r = record("kafka.conn", text, logging.ERROR, "localhost:9092")
            if throttle.filter(r):
                shown.append((second, r.getMessage()))
    assert [s for s, _ in shown] == [0, 30, 60]
    assert shown[0][1] == "Connect attempt to localhost:9092 returned error 111"
    assert shown[1][1].endswith("(59 more like it since the last one shown)")
    assert "localhost:9092" in shown[1][1]


def test_librdkafka_facilities_are_thinned_apart() -> None:
    clock = Clock()
    throttle = RepeatThrottle(every_s=30, clock=clock)
    fail = "FAIL [c#consumer-1] [thrd:localhost:9092/bootstrap]: Connection refused"
    assert throttle.filter(record("librdkafka", fail))
    assert not throttle.filter(record("librdkafka", fail))
    # Another kind of error is its own line, not swallowed by the connection errors.
    assert throttle.filter(record("librdkafka", "SASL [c#consumer-1]: authentication failed"))


def test_the_workers_own_lines_and_info_lines_are_never_held_back() -> None:
    throttle = RepeatThrottle(every_s=30, clock=Clock())
    for _ in range(5):
        assert throttle.filter(record("worker.app", "commit skipped", logging.WARNING))
        assert throttle.filter(record("kafka.conn", "connecting to localhost", logging.INFO))
