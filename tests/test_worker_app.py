"""The loop (worker/app.py) with stand-in clients: what it must not do when something breaks."""

from __future__ import annotations

import pytest

from tests.worker_fakes import RefusingSink, RevokingSource
from worker.build import wire
from worker.health import Health
from worker.kafka.protocol import Message
from worker.metrics import new_metrics
from worker.settings import WorkerSettings


def test_a_loop_that_breaks_commits_nothing_even_when_close_revokes(tiny_models) -> None:
    source = RevokingSource([Message("in", 0, 0, None, b"{not json", 0)])  # -> a dead letter
    metrics, _ = new_metrics()
    worker = wire(WorkerSettings(metrics_port=0), tiny_models, source, RefusingSink(), metrics, Health())
    with pytest.raises(RuntimeError, match="refused"):
        worker.run()
    assert source.committed == []  # offset 0 has no output: committing 1 would lose it


class BrokenOnClose(RevokingSource):
    def close(self) -> None:
        raise ConnectionError("the broker went away")


def test_an_error_while_stopping_is_logged_and_never_hides_what_ended_the_loop(tiny_models, caplog) -> None:
    source = BrokenOnClose([Message("in", 0, 0, None, b"{not json", 0)])
    metrics, _ = new_metrics()
    worker = wire(WorkerSettings(metrics_port=0), tiny_models, source, RefusingSink(), metrics, Health())
    with pytest.raises(RuntimeError, match="refused"):  # the output refused, not the close
        worker.run()
    assert "while stopping: ConnectionError: the broker went away" in caplog.text
    assert source.committed == []


def test_readyz_says_not_ready_from_a_revocation_until_the_next_assignment(tiny_models) -> None:
    from tests.worker_fakes import RecordingSink

    source, health = RevokingSource([]), Health()
    health.models_loaded = True
    metrics, _ = new_metrics()
    worker = wire(WorkerSettings(metrics_port=0), tiny_models, source, RecordingSink(), metrics, health)
    source.subscribe(["in"], worker.on_assigned, worker.on_revoked)
    assert health.ready() == (True, "ready")
    source.revoke([("in", 0)])  # the group rebalances (eager: every partition is given up first)
    assert health.ready() == (False, "no input partitions assigned (joining the consumer group)")
    worker.on_assigned([("in", 0)])
    assert health.ready() == (True, "ready")


def test_each_scored_record_is_timed_in_each_stage(tiny_models) -> None:
    import time

    import numpy as np

    from schemas import image_message
    from tests.worker_fakes import RecordingSink
    from worker.metrics import STAGES

    model = tiny_models.default
    shape = model.record_shape
    sent_ms = int(time.time() * 1000) - 300  # produced 0.3 s ago
    messages = [Message("in", 0, i, None, image_message(np.zeros(shape, np.uint8), id=f"r{i}"), sent_ms)
                for i in range(5)]  # fmt: skip
    metrics, registry = new_metrics()
    settings = WorkerSettings(metrics_port=0, max_batch=2, max_wait_ms=0)
    worker = wire(settings, tiny_models, RevokingSource(messages), RecordingSink(), metrics, Health())
    worker.consumer.subscribe(["in"], worker.on_assigned, worker.on_revoked)
    worker.step()
    assert worker.drain()

    def sample(stage: str, suffix: str) -> float:
        labels = {"model": model.key, "stage": stage}
        return registry.get_sample_value(f"anomaly_worker_stage_seconds_{suffix}", labels)

    assert STAGES == ("kafka", "batch", "score", "handback", "publish")
    assert [sample(stage, "count") for stage in STAGES] == [5.0] * 5
    assert sample("kafka", "sum") >= 5 * 0.3  # from the Kafka timestamp to the loop: at least 0.3 s each
    assert all(sample(stage, "sum") >= 0.0 for stage in STAGES)
    end_to_end = registry.get_sample_value("anomaly_worker_end_to_end_seconds_sum", {"model": model.key})
    assert end_to_end >= sum(sample(stage, "sum") for stage in STAGES) - 1e-6  # the stages lie within it
