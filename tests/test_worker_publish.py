"""The publish stage (worker/publish.py): what is sent where, under which key."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import numpy as np
import pytest

from schemas import DeadLetter, Reason, image_message
from tests.worker_fakes import RecordingSink, decoded, message
from worker.kafka.protocol import OutputRefused
from worker.kinds import kinds_for
from worker.metrics import new_metrics
from worker.publish import Publisher
from worker.settings import WorkerSettings


@pytest.mark.parametrize("scores_topic", [None, "scores"])
def test_publisher_alerts_at_or_above_the_threshold_and_scores_the_rest(tiny_models, scores_topic) -> None:
    sink, (metrics, _) = RecordingSink(), new_metrics()
    kind = kinds_for(tiny_models, WorkerSettings(metrics_port=0))["tiny-vae:1"]
    items = [decoded(image_message(np.zeros((28, 28), np.uint8), id=f"r{i}"), tiny_models, offset=i)[1]
             for i in range(4)]  # fmt: skip
    t = kind.model.manifest.threshold
    scores = np.array([t - 1.0, t, t * 3, 0.0])
    sent = []
    publisher = Publisher(sink, "alerts", "dead", scores_topic, metrics, sent=sent.append)
    assert publisher.outcomes(kind, items, kind.decide(items, scores, None), datetime.now(UTC)) == 2
    alerts = [(key, value) for topic, key, value in sink.sent if topic == "alerts"]
    assert [key for key, _ in alerts] == [b"r1", b"r2"]
    assert [v["score"] for _, v in alerts] == [t, t * 3] and all(v["threshold"] == t for _, v in alerts)
    assert alerts[1][1]["source"] == {"topic": "in", "partition": 0, "offset": 2}
    scored = [value["record_id"] for topic, _, value in sink.sent if topic == "scores"]
    assert scored == ([] if scores_topic is None else ["r0", "r3"])
    assert len(sent) == len(sink.sent)  # the checkpoint hears of every output


def ignore(delivery: object) -> None:
    """The checkpoint's side of sending, not under test here."""


class RefusingOneSink(RecordingSink):
    """Refuses the output keyed `refused`, as a client refuses one over its size limit."""

    def __init__(self, refused: bytes) -> None:
        super().__init__()
        self.refused = refused

    def send(self, topic, key, value):
        if key == self.refused and topic != "dead":
            raise OutputRefused("MessageSizeTooLargeError: the message is too large")
        return super().send(topic, key, value)


def test_an_output_the_client_refuses_or_over_the_limit_becomes_a_dead_letter_and_the_rest_go_on(
    tiny_models,
) -> None:
    sink, (metrics, _) = RefusingOneSink(b"r1"), new_metrics()
    kind = kinds_for(tiny_models, WorkerSettings(metrics_port=0))["tiny-vae:1"]
    ids = ["r0", "r1", "r2" * 300, "r3"]  # r2's alert: over the 1,200-byte limit set below
    items = [decoded(image_message(np.zeros((28, 28), np.uint8), id=rid), tiny_models, offset=i)[1]
             for i, rid in enumerate(ids)]  # fmt: skip
    t = kind.model.manifest.threshold
    publisher = Publisher(sink, "alerts", "dead", None, metrics, sent=ignore, max_output_bytes=1200)
    verdicts = kind.decide(items, np.full(4, t * 2), None)
    assert publisher.outcomes(kind, items, verdicts, datetime.now(UTC)) == 2
    assert [key for topic, key, _ in sink.sent if topic == "alerts"] == [b"r0", b"r3"]
    letters = [(key, v) for topic, key, v in sink.sent if topic == "dead"]
    assert [v["reason"] for _, v in letters] == ["output_failed", "output_failed"]
    assert [v["source"]["offset"] for _, v in letters] == [1, 2]
    assert (
        "MessageSizeTooLarge" in letters[0][1]["error"]
        and "1,200-byte output limit" in letters[1][1]["error"]
    )


def test_a_dead_letter_fits_the_output_limit_whatever_its_record_holds() -> None:
    sink, (metrics, _) = RecordingSink(), new_metrics()
    publisher = Publisher(sink, "alerts", "dead", None, metrics, sent=ignore, max_output_bytes=200_000)
    key, value = b"k" * 600_000, b"{" + b"x" * 700_000
    sent = []
    sink.send = lambda topic, k, v: sent.append((topic, k, v))
    publisher.dead_letter(message(value, offset=9, key=key), Reason.INVALID_JSON, "e" * 5000)
    [(topic, kafka_key, raw)] = sent
    assert topic == "dead" and len(kafka_key) + len(raw) <= 200_000
    assert kafka_key == b"sha256:" + hashlib.sha256(key).hexdigest().encode()  # one key, one partition
    letter = DeadLetter.model_validate_json(raw)
    assert letter.original_truncated and letter.original_size == len(value)
    assert (
        value.startswith(base64.b64decode(letter.original))
        and len(base64.b64decode(letter.original)) > 50_000
    )
    assert letter.original_key_truncated and key.startswith(base64.b64decode(letter.original_key))
    assert len(letter.error) == 2000


def test_a_small_dead_letter_copies_everything() -> None:
    sink, (metrics, _) = RecordingSink(), new_metrics()
    publisher = Publisher(sink, "alerts", "dead", None, metrics, sent=ignore)
    publisher.dead_letter(message(b"{bad", offset=3, key=b"k1"), Reason.INVALID_JSON, "not JSON")
    [(_, kafka_key, letter)] = sink.sent
    assert kafka_key == b"k1" and base64.b64decode(letter["original"]) == b"{bad"
    assert not letter["original_truncated"] and not letter["original_key_truncated"]


@pytest.mark.parametrize("output", ["alert", "score"])
def test_output_json_writes_the_bytes_the_output_model_would(output) -> None:
    from datetime import UTC, datetime

    import numpy as np

    from schemas import AnomalyAlert, ScoreMessage, SourcePosition
    from schemas.outputs import output_json

    cls = AnomalyAlert if output == "alert" else ScoreMessage
    when = datetime(2026, 12, 7, 6, 30, 1, 250_000, tzinfo=UTC)
    cases = [
        dict(record_id="mnist/7", kind="image", model="mnist-vae", model_version="3", score=float("inf"),
             threshold=np.float64(0.25), ts=None),
        dict(record_id="cpu{host=a}", kind="metric", model="kpi-vae", model_version="1", score=1.5e-7,
             threshold=2.0, ts=when, series_key="cpu{host=a}", value=-3.25, series="cpu", labels={},
             window=32, detector="season", detector_score=np.float64(4.5), detector_threshold=None),
    ]
    for fields in cases:
        if output == "alert":
            fields = {**fields, "severity": 0.75, "detected_at": when}
        source = {"topic": "in", "partition": 2, "offset": 41}
        model = cls.model_construct(**{k: v for k, v in fields.items() if k in cls.model_fields},
                                    source=SourcePosition(**source))  # fmt: skip
        written = output_json(cls, {**fields, "source": source})
        assert written == model.model_dump_json(exclude_none=True).encode()
        if fields["score"] != float("inf"):  # inf is written as null, as the model writes it
            cls.model_validate_json(written)  # and it reads back
