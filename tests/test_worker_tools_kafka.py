"""The chores beside the worker, on the real broker: `python -m worker topics create` makes an input
topic as advised, a worker scores records from it, `python -m worker follow` prints the alerts and
dead letters it wrote, and the worker's log has its summary line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from schemas import image_message
from tests.test_worker_exactly_once_kafka import digits
from tests.worker_harness import WorkerThread, produce, read_topic, wait_for, worker_settings
from tooling.kafka import admin
from tooling.process import PACKAGE_ROOT

pytestmark = pytest.mark.integration


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_create_a_topic_stream_into_it_and_follow_the_alerts_and_dead_letters(
    kafka_bootstrap, tiny_bundle, caplog
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {"input": f"tools-in-{run}", "alerts": f"tools-alerts-{run}", "dead": f"tools-dead-{run}",
              "scores": f"tools-scores-{run}", "group": f"tools-{run}"}  # fmt: skip
    at = ("--bootstrap-servers", kafka_bootstrap)
    made = tool("topics", "create", topics["input"], "--partitions", "2", *at)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (f"created {topics['input']}: 2 partitions, 1 replicas, "
                                   "compression.type=uncompressed")  # fmt: skip
    again = tool("topics", "create", topics["input"], *at)
    assert again.stdout.strip() == f"{topics['input']} exists already, stored as advised"
    with admin(kafka_bootstrap) as client:
        [described] = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics["input"])])
    assert ("compression.type", "uncompressed") in [(e[0], e[1]) for e in described.resources[0][4]]

    pool = digits()  # MNIST 1s and 4s (the tiny bundle's normal) and 5s (anomalies)
    values = [image_message(pool[i], id=f"tools/{i}") for i in range(60)] + [b"{not json"]
    settings = worker_settings(kafka_bootstrap, tiny_bundle.folder.parent.parent, topics,
                               summary_interval_s=1.0, transport="confluent")  # fmt: skip
    with caplog.at_level(logging.INFO, logger="worker"), WorkerThread(settings) as w:
        produce(kafka_bootstrap, topics["input"], values)
        assert wait_for(lambda: len(read_topic(kafka_bootstrap, topics["dead"], quiet_s=0.3)) == 1, 90)
        alerts = read_topic(kafka_bootstrap, topics["alerts"], quiet_s=0.5)
        assert wait_for(lambda: any(r.getMessage().startswith("last ") and " records (" in r.getMessage()
                                    and "dead letters (invalid_json 1)" in r.getMessage()
                                    for r in caplog.records), 30)  # fmt: skip
        w.stop()
    assert alerts, "some 5s should alert"

    followed = tool("follow", "--topics", f"{topics['alerts']},{topics['dead']}", "--from-beginning",
                    "--idle-exit-s", "5", "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
    lines = followed.stdout.splitlines()
    assert followed.returncode == 0, followed.stderr
    assert len([line for line in lines if line.startswith("ALERT  tools/")]) == len(alerts), lines
    [dead] = [line for line in lines if line.startswith("DEAD ")]
    assert "invalid_json" in dead and f"({topics['input']}:" in dead, dead
    as_json = tool("follow", "--topics", topics["dead"], "--from-beginning", "--json", "--idle-exit-s", "5",
                   "--bootstrap-servers", kafka_bootstrap)  # fmt: skip
    [letter] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert letter["reason"] == "invalid_json"


def test_send_puts_a_csv_of_series_on_a_topic_keyed_by_series_in_time_order(
    kafka_bootstrap, new_topic, tmp_path
) -> None:
    topic = new_topic(partitions=2)
    csv = tmp_path / "mine.csv"
    start = {"cpu": 1.0, "mem": 50.0}
    rows = [f"{key},2026-01-01T00:{m:02d}:00Z,{v + m}" for m in range(5) for key, v in start.items()]
    csv.write_text("series,timestamp,value\n" + "\n".join(rows) + "\n")
    done = tool("send", str(csv), "--topic", topic, "--bootstrap-servers", kafka_bootstrap)
    assert done.returncode == 0 and done.stdout.startswith(f"sent 10 records from {csv} to {topic}"), done
    got = read_topic(kafka_bootstrap, topic, expect=10)
    points = [(m.key.decode(), json.loads(m.value)) for m in got]
    assert {key for key, _ in points} == {"cpu", "mem"}
    for key in ("cpu", "mem"):  # one partition per series, in time order
        mine = [p for k, p in points if k == key]
        assert len({m.partition for m in got if m.key.decode() == key}) == 1
        assert [p["ts"] for p in mine] == sorted(p["ts"] for p in mine) and len(mine) == 5
    bad = tool("send", str(tmp_path / "none.csv"), "--topic", topic, "--bootstrap-servers", kafka_bootstrap)
    assert bad.returncode == 1 and "no such file or folder" in bad.stderr


def test_follow_refuses_topics_none_of_which_exist_and_waits_for_one_missing_among_others(
    kafka_bootstrap, new_topic
) -> None:
    there, typo = new_topic(), f"alert-{uuid.uuid4().hex[:8]}"
    none = tool("follow", "--topics", typo, "--idle-exit-s", "1", "--bootstrap-servers", kafka_bootstrap)
    [line] = none.stderr.strip().splitlines()  # one line, no traceback
    assert none.returncode == 2 and line.startswith(f"worker follow: no topic {typo} on this cluster (its "
                                                    "topics: "), none.stderr  # fmt: skip
    with admin(kafka_bootstrap) as client:
        assert typo not in client.list_topics(), "follow must not create the topic it looks for"

    # One there, one not yet: it follows the first, and the second once it is created.
    later = f"later-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, there, [b'{"first": 1}'])
    args = ["follow", "--topics", f"{there},{later}", "--from-beginning", "--idle-exit-s", "20",
            "--bootstrap-servers", kafka_bootstrap]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=PACKAGE_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        said = proc.stderr.readline()  # the topic is created only once follow has seen it missing
        assert said.startswith(f"worker follow: no topic {later} (yet); following the others"), said
        with admin(kafka_bootstrap) as client:
            client.create_topics([NewTopic(later, 1, 1)])
        produce(kafka_bootstrap, later, [b'{"second": 2}'])
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"worker follow: topic {later} created; following it too" in stderr
    assert stdout.splitlines() == [f'{there}: {{"first": 1}}', f'{later}: {{"second": 2}}'], stdout


def test_send_refuses_a_topic_that_does_not_exist_unless_told_to_create_it(kafka_bootstrap, tmp_path) -> None:
    csv, jsonl = tmp_path / "mine.csv", tmp_path / "mine.jsonl"
    rows = [f"cpu,2026-01-01T00:0{m}:00Z,{m},a" for m in range(2)]
    csv.write_text("\n".join(["series,timestamp,value,host", *rows]) + "\n")
    jsonl.write_text(json.dumps({"kind": "metric", "series": "cpu", "labels": {"host": "a"},
                                 "ts": "2026-01-01T00:00:00Z", "value": 1}) + "\n")  # fmt: skip
    typo = f"metricz-{uuid.uuid4().hex[:8]}"
    at = ("--bootstrap-servers", kafka_bootstrap)
    for file in (csv, jsonl):  # every kind of input
        refused = tool("send", str(file), "--topic", typo, *at)
        assert refused.returncode == 2 and "sent" not in refused.stdout, refused
        [line] = [x for x in refused.stderr.splitlines() if "warning" not in x]
        hint = f"create it with `python -m worker topics create {typo}` (or pass --create-topic)"
        assert line.startswith(f"worker send: no topic {typo} on Kafka at {kafka_bootstrap}; {hint}"), line
    with admin(kafka_bootstrap) as client:
        assert typo not in client.list_topics(), "a refused send must not create the topic"

    done = tool("send", str(csv), "--topic", typo, "--create-topic", *at)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"created {typo}: 3 partitions, 1 replicas"), done.stdout
    assert done.stdout.splitlines()[1].startswith(f"sent 2 records from {csv} to {typo}"), done.stdout
    assert "column(s) host not read" in done.stderr  # the CSV's extra column is said, not dropped unseen
    assert len(read_topic(kafka_bootstrap, typo, expect=2)) == 2
