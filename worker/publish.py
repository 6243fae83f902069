"""The publish stage: serialise the outputs and send them (acks=all): an alert, or a score message with
a scores topic, per scored record; a dead letter per record that cannot be scored.

What is an alert and how severe was decided before (worker/decide.py); whether the broker
acknowledged each output is the checkpoint's to check (worker/checkpoint.py), which is handed
every delivery as it is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from schemas import AnomalyAlert, DeadLetter, Reason, ScoreMessage, SourcePosition
from worker.batch import Item
from worker.decide import Verdicts
from worker.kafka.protocol import Consumed, Delivery, Sink
from worker.kinds import RecordKind
from worker.metrics import Metrics

SCORE_FIELDS = frozenset(ScoreMessage.model_fields)


def source_of(message: Consumed) -> SourcePosition:
    # model_construct: the fields come from the broker, already typed; validation is pure cost here.
    return SourcePosition.model_construct(
        topic=message.topic, partition=message.partition, offset=message.offset
    )


class Publisher:
    # Base64 grows a value by a third: this keeps a dead letter under Kafka's default 1 MiB limit.
    MAX_ORIGINAL_BYTES = 700_000

    def __init__(
        self,
        producer: Sink,
        alerts_topic: str,
        dead_letter_topic: str,
        scores_topic: str | None,
        metrics: Metrics,
        sent: Callable[[Delivery], None],
    ) -> None:
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.dead_letter_topic = dead_letter_topic
        self.scores_topic = scores_topic
        self.metrics = metrics
        self.sent = sent  # told of every output sent, with its delivery report to check

    def outcomes(self, kind: RecordKind, items: list[Item], verdicts: Verdicts, detected_at: datetime) -> int:
        """An alert for each alerting record, a score message for the rest (with a scores topic).
        Returns the number of alerts."""
        m = kind.model.manifest
        # Most records are not anomalies: with no scores topic they need no Python work at all.
        send = range(len(items)) if self.scores_topic else np.flatnonzero(verdicts.alerts).tolist()
        for i in send:
            item = items[i]
            fields = dict(
                record_id=item.record_id,
                kind=m.kind,
                model=m.name,
                model_version=m.version,
                score=float(verdicts.scores[i]),
                threshold=float(verdicts.thresholds[i]),
                ts=item.record.ts,
                source=source_of(item.message),
            )
            fields.update(kind.output_fields(item, verdicts, i))
            # Built from validated records and a validated manifest: construct, do not re-validate.
            if verdicts.alerts[i]:
                severity = float(verdicts.severities[i])
                msg = AnomalyAlert.model_construct(**fields, severity=severity, detected_at=detected_at)
                topic = self.alerts_topic
            else:
                msg = ScoreMessage.model_construct(**{k: v for k, v in fields.items() if k in SCORE_FIELDS})
                topic = self.scores_topic
            self._send(topic, kind.output_key(item).encode(), msg.model_dump_json(exclude_none=True).encode())
        return int(verdicts.alerts.sum())

    def dead_letter(self, message: Consumed, reason: Reason, error: str) -> None:
        value = message.value or b""
        letter = DeadLetter(
            reason=reason,
            error=error[:2000],
            original=base64.b64encode(value[: self.MAX_ORIGINAL_BYTES]).decode(),
            original_size=len(value),
            original_truncated=len(value) > self.MAX_ORIGINAL_BYTES,
            original_key=base64.b64encode(message.key).decode() if message.key is not None else None,
            source=source_of(message),
            dead_lettered_at=datetime.now(UTC),
        )
        self._send(self.dead_letter_topic, message.key, letter.model_dump_json().encode())
        self.metrics.dead_letters.labels(reason=reason.value).inc()

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent(self.producer.send(topic, key, value))
