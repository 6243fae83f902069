"""The publish stage (worker/publish.py): what is sent where, under which key."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from schemas import image_message
from tests.worker_fakes import RecordingSink, decoded
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
