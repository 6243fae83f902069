"""Publish alerts, scores and dead letters (acks=all); report whether every one was acknowledged."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

import numpy as np

from schemas import AnomalyAlert, DeadLetter, MetricPoint, Reason, ScoreMessage, SourcePosition
from schemas.detect import Decision
from schemas.manifest import ratio_severity
from worker.batch import Item
from worker.metrics import Metrics
from worker.registry import LoadedModel
from worker.transport import Consumed, Sink

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """An output was not acknowledged: the inputs behind it must not be committed."""


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
    ) -> None:
        self.producer = producer
        self.alerts_topic = alerts_topic
        self.dead_letter_topic = dead_letter_topic
        self.scores_topic = scores_topic
        self.metrics = metrics
        self._in_flight: list = []  # futures since the last flush; touched only by the loop thread

    def outcomes(
        self,
        model: LoadedModel,
        items: list[Item],
        scores: np.ndarray,
        detected_at: datetime,
        decisions: list[Decision] | None = None,
    ) -> int:
        """An alert for each alerting record, a score message for the rest (with a scores topic).

        Images alert at score >= the model's threshold. Metric points come with the detector's
        `decisions` (schemas/detect.py): its score, the threshold it had to reach, the part that
        fired. Returns the number of alerts."""
        m = model.manifest
        if decisions is None:
            thresholds = np.full(len(items), m.threshold)
            is_alert = scores >= thresholds
        else:
            scores = np.fromiter((d.score for d in decisions), np.float64, len(decisions))
            thresholds = np.fromiter((d.threshold for d in decisions), np.float64, len(decisions))
            is_alert = np.fromiter((d.alert for d in decisions), bool, len(decisions))
        # Most records are not anomalies: with no scores topic they need no Python work at all.
        send = range(len(items)) if self.scores_topic else np.flatnonzero(is_alert).tolist()
        for i in send:
            item, score, threshold = items[i], float(scores[i]), float(thresholds[i])
            common = dict(
                record_id=item.record_id,
                kind=m.kind,
                model=m.name,
                model_version=m.version,
                score=score,
                threshold=threshold,
                ts=item.record.ts,
                source=source_of(item.message),
            )
            key = item.record_id
            extra: dict[str, object] = {}
            if isinstance(item.record, MetricPoint) and decisions is not None:
                d = decisions[i]
                key = item.record.series_key
                common.update(series_key=key, value=item.record.value)
                if common["ts"] is None and item.point_ts is not None:
                    common["ts"] = datetime.fromtimestamp(item.point_ts, UTC)
                extra = dict(
                    series=item.record.series, labels=item.record.labels, window=len(item.row),
                    detector=d.part, detector_score=d.part_score, detector_threshold=d.part_threshold,
                )  # fmt: skip
            if is_alert[i]:
                severity = (
                    ratio_severity(score, threshold) if m.kind == "metric" else m.calibration.severity(score)
                )
                # Built from validated records and a validated manifest: construct, do not re-validate.
                msg = AnomalyAlert.model_construct(
                    **common, **extra, severity=severity, detected_at=detected_at
                )
                topic = self.alerts_topic
            else:
                if decisions is not None:
                    common["detector"] = decisions[i].part
                msg, topic = ScoreMessage.model_construct(**common), self.scores_topic
            self._send(topic, key.encode(), msg.model_dump_json(exclude_none=True).encode())
        return int(is_alert.sum())

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
        self._in_flight.append(self.producer.send(topic, key, value))

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for every output sent so far; raise DeliveryError unless all were acknowledged."""
        in_flight, self._in_flight = self._in_flight, []
        try:
            self.producer.flush(timeout_s)
        except Exception as exc:  # kafka-python raises KafkaTimeoutError when the flush times out
            log.warning("flush did not complete: %s", exc)
        failed = [f for f in in_flight if not f.succeeded()]
        sent = len(in_flight)
        if failed:
            self.metrics.produce_errors.inc(len(failed))
            first = failed[0].exception if failed[0].is_done else "no acknowledgement before the timeout"
            raise DeliveryError(f"{len(failed)} of {sent} outputs were not acknowledged: {first}")
        return sent
