"""Logging: plain lines for people, or one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

# Loggers of the Kafka clients whose errors are mostly one line per reconnect attempt.
CLIENT_LOGGERS = ("kafka.conn", "kafka.client", "librdkafka")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


class RepeatThrottle(logging.Filter):
    """Lets one line of a kind from the Kafka clients through per `every_s`, and says how many
    were held back. While a broker is down, kafka-python logs two lines per reconnect attempt and
    librdkafka about two a second per client, which buries everything else. A kind is a logger
    plus, for librdkafka, its facility (`FAIL`, `COMMITFAIL`, `SASL`, ...) and, for kafka-python,
    the message's template, so an error of another kind still shows at once."""

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self._kinds: dict[tuple[str, str], list] = {}  # kind -> [when one last went through, held since]
        self._lock = threading.Lock()  # kafka-python logs from its sender and heartbeat threads too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name not in CLIENT_LOGGERS:
            return True
        # confluent-kafka logs ("%s [%s] %s", (facility, client, text)): the facility leads.
        if record.name == "librdkafka":
            kind = (record.name, record.getMessage().split(" ", 1)[0])
        else:
            kind = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.every_s:
                seen[1] += 1
                return False
            held = seen[1] if seen is not None else 0
            self._kinds[kind] = [now, 0]
        if held:
            record.msg = f"{record.getMessage()} ({held} more like it since the last one shown)"
            record.args = ()
        return True


def configure(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if logging.getLevelName(level) > logging.DEBUG:
        handler.addFilter(RepeatThrottle())
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Both Kafka clients log every reconnect attempt; their errors reach us as exceptions anyway.
    for name in ("kafka", "librdkafka"):
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLevelName(level)))
