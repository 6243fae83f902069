"""The worker stays up through Kafka trouble, on the real broker with both clients: a broker outage
mid-stream, and a broker that comes up after the worker."""

from __future__ import annotations

import collections
import json
import threading
import time

import numpy as np
import pytest

from schemas import image_message
from tests.worker_harness import (
    WorkerThread,
    produce,
    read_topic,
    start_worker_process,
    wait_for,
    worker_settings,
)
from tooling.broker import LocalKafka
from tooling.kafka import STORED_PLAIN, create_topics

pytestmark = pytest.mark.integration


def output_ids(bootstrap: str, topics: dict[str, str]) -> collections.Counter:
    messages = [
        m for t in ("alerts", "scores", "dead") for m in read_topic(bootstrap, topics[t], quiet_s=0.5)
    ]
    return collections.Counter(json.loads(m.value).get("record_id", "dead") for m in messages)


def private_broker(tmp_path) -> tuple[LocalKafka, dict[str, str]]:
    """A broker of the test's own (it is stopped and started), with the worker's topics."""
    broker = LocalKafka(home=tmp_path / "kafka").start()
    topics = {"input": "in", "alerts": "alerts", "dead": "dead", "scores": "scores", "group": "g"}
    partitions = {"in": 2, "alerts": 1, "dead": 1, "scores": 1}
    create_topics(broker.bootstrap_servers, partitions, {"in": STORED_PLAIN})
    return broker, topics


def images(n: int, prefix: str) -> list[bytes]:
    return [image_message(np.zeros((28, 28), np.uint8), id=f"{prefix}/{i}") for i in range(n)]


def test_a_broker_outage_mid_stream_pauses_the_worker_and_it_resumes_losing_nothing(
    tmp_path, tiny_bundle, transport
) -> None:
    """The broker goes away for 12 s while records stream in: the outputs in hand wait (not ready
    meanwhile), the worker does not exit, and every record has its output afterwards."""
    broker, topics = private_broker(tmp_path)
    bootstrap = broker.bootstrap_servers
    # The group's session outlives the outage, as the default does: no rebalance, no re-reads.
    settings = worker_settings(bootstrap, tiny_bundle.folder.parent.parent, topics, transport=transport,
                               session_timeout_ms=30_000)  # fmt: skip
    sent = images(600, "bounce")
    try:
        with WorkerThread(settings) as w:
            produce(bootstrap, "in", sent[:300])
            assert wait_for(lambda: sum(output_ids(bootstrap, topics).values()) >= 1)
            broker.stop()
            time.sleep(12)
            broker.start()
            produce(bootstrap, "in", sent[300:])
            assert wait_for(lambda: sum(output_ids(bootstrap, topics).values()) >= 600, 180)
            assert w.thread.is_alive() and w.error is None
            w.stop()
        counts = output_ids(bootstrap, topics)
    finally:
        broker.stop()
    assert set(counts) == {f"bounce/{i}" for i in range(600)}  # none missing
    print(f"duplicates through the outage ({transport}): {sum(counts.values()) - 600}")
    assert sum(counts.values()) - 600 <= 30  # a commit lost in the outage re-reads at most its second


def test_a_worker_started_while_kafka_is_down_waits_for_it(tmp_path, tiny_bundle, transport) -> None:
    broker, topics = private_broker(tmp_path)
    bootstrap = broker.bootstrap_servers
    produce(bootstrap, "in", images(50, "waiting"))
    broker.stop()
    settings = worker_settings(bootstrap, tiny_bundle.folder.parent.parent, topics, transport=transport)
    proc = start_worker_process(settings)
    lines: list[str] = []  # its output, read as it comes (start-up may be slow on a loaded machine)

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("retrying until it answers" in line for line in lines), 120), lines
        time.sleep(3)
        assert proc.poll() is None, lines  # still there, waiting
        broker.start()
        assert wait_for(lambda: sum(output_ids(bootstrap, topics).values()) >= 50, 120)
        proc.terminate()
        proc.wait(timeout=90)
    finally:
        proc.kill()
        broker.stop()
    reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "retrying until it answers (--kafka-wait-s)" in out and "answers after" in out, out
