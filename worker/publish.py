"""The publish stage: serialise the outputs and send them (acks=all): an alert, or a score message with
a scores topic, per scored record; a dead letter per record that cannot be scored.

What is an alert and how severe was decided before (worker/decide.py); whether the broker
acknowledged each output is the checkpoint's to check (worker/checkpoint.py), which is handed
every delivery as it is sent.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from schemas import AnomalyAlert, DeadLetter, Reason, ScoreMessage, SourcePosition
from schemas.outputs import output_json
from worker.batch import Item
from worker.decide import Verdicts
from worker.kafka.protocol import Consumed, Delivery, OutputRefused, Sink
from worker.kinds import RecordKind
from worker.metrics import Metrics


def source_of(message: Consumed) -> SourcePosition:
    # model_construct: the fields come from the broker, already typed; validation is pure cost here.
    return SourcePosition.model_construct(
        topic=message.topic, partition=message.partition, offset=message.offset
    )


def source_fields(message: Consumed) -> dict[str, object]:
    """An output's `source`, as output_json takes it."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


DEFAULT_MAX_OUTPUT_BYTES = 1_000_000  # librdkafka's message.max.bytes; Kafka's topic default is 1 MiB
# What a dead letter may copy of its record, so it fits by construction (record ids are cut at decode,
# worker/decode.py; OutputRefused is the backstop): a key beyond these is cut, with a marker saying so.
MAX_KEY_BYTES = 4096  # a dead letter's Kafka key; a longer one becomes "sha256:<hex>"
MAX_ORIGINAL_KEY_BYTES = 16_384  # a dead letter's copy of that key
# A dead letter stays under 1,000,000 bytes even where topics take more: readers with their clients'
# default fetch limits (kafka-python: a 1 MiB response) can still read every one.
MAX_DEAD_LETTER_BYTES = 1_000_000
DEAD_LETTER_SLACK = 8192  # a dead letter's fields besides the copies (error <= 2,000 chars), JSON quoting


def dead_letter_key(key: bytes | None) -> bytes | None:
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


class Publisher:
    def __init__(
        self,
        producer: Sink,
        alerts_topic: str,
        dead_letter_topic: str,
        scores_topic: str | None,
        metrics: Metrics,
        sent: Callable[[Delivery], None],
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.dead_letter_topic = dead_letter_topic
        self.scores_topic = scores_topic
        self.metrics = metrics
        self.sent = sent  # told of every output sent, with its delivery report to check
        self.max_output_bytes = max_output_bytes  # key + value of one output

    def outcomes(
        self,
        kind: RecordKind,
        items: list[Item],
        verdicts: Verdicts,
        detected_at: datetime,
        maps: np.ndarray | None = None,
    ) -> int:
        """An alert for each alerting record, a score message for the rest (with a scores topic); a
        dead letter for a record whose output cannot be made (OUTPUT_FAILED). Returns the alerts sent.
        `maps`: the records' anomaly maps from the graph, for their alerts (kind.explain)."""
        # Most records are not anomalies: with no scores topic they need no Python work at all.
        send = range(len(items)) if self.scores_topic else np.flatnonzero(verdicts.alerts).tolist()
        explained = kind.explain(verdicts, maps) if verdicts.alerts.any() else None
        alerts = 0
        for i in send:
            try:
                self._send_outcome(kind, items[i], verdicts, i, detected_at, explained)
            except (OutputRefused, ValueError, TypeError, OverflowError, OSError) as exc:
                # Tied to this one record (a timestamp out of datetime's range, an output over the
                # limit): it must not stop the partition.
                what = "alert" if verdicts.alerts[i] else "score message"
                self.dead_letter(items[i].message, Reason.OUTPUT_FAILED,
                                 f"its {what} could not be sent: {type(exc).__name__}: {exc}")  # fmt: skip
                continue
            alerts += bool(verdicts.alerts[i])
        return alerts

    def _send_outcome(
        self, kind: RecordKind, item: Item, verdicts: Verdicts, i: int, detected_at: datetime,
        explained: dict[int, dict[str, object]] | None,
    ) -> None:  # fmt: skip
        m = kind.model.manifest
        fields = dict(
            record_id=item.record_id,
            kind=m.kind,
            model=m.name,
            model_version=m.version,
            score=float(verdicts.scores[i]),
            threshold=float(verdicts.thresholds[i]),
            ts=item.record.ts,
            source=source_fields(item.message),
        )
        fields.update(kind.output_fields(item, verdicts, i))
        # Built from validated records and a validated manifest: serialised, not re-validated.
        if verdicts.alerts[i]:
            fields.update(severity=float(verdicts.severities[i]), detected_at=detected_at)
            fields.update(kind.alert_fields(item, verdicts, i, explained))
            output, topic = AnomalyAlert, self.alerts_topic
        else:
            output, topic = ScoreMessage, self.scores_topic
        key, value = kind.output_key(item).encode(), output_json(output, fields)
        if len(key) + len(value) > self.max_output_bytes:
            raise OutputRefused(
                f"{len(key) + len(value):,} bytes, over the {self.max_output_bytes:,}-byte output limit"
            )
        self._send(topic, key, value)

    def dead_letter(self, message: Consumed, reason: Reason, error: str) -> None:
        """The record, as far as it fits, with why it was not scored; always under the output limit."""
        value = message.value or b""
        kafka_key = dead_letter_key(message.key)
        key_copy = message.key[:MAX_ORIGINAL_KEY_BYTES] if message.key is not None else None
        size = min(self.max_output_bytes, MAX_DEAD_LETTER_BYTES)
        room = size - DEAD_LETTER_SLACK - len(kafka_key or b"") - _b64_len(key_copy)
        keep = max(0, min(len(value), room // 4 * 3))  # base64 grows what it copies by a third
        letter = DeadLetter(
            reason=reason,
            error=error[:2000],
            original=base64.b64encode(value[:keep]).decode(),
            original_size=len(value),
            original_truncated=keep < len(value),
            original_key=base64.b64encode(key_copy).decode() if key_copy is not None else None,
            original_key_truncated=message.key is not None and len(key_copy) < len(message.key),
            source=source_of(message),
            dead_lettered_at=datetime.now(UTC),
        )
        self._send(self.dead_letter_topic, kafka_key, letter.model_dump_json().encode())
        self.metrics.dead_letters.labels(reason=reason.value).inc()

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent(self.producer.send(topic, key, value))


def _b64_len(data: bytes | None) -> int:
    return 0 if data is None else (len(data) + 2) // 3 * 4
