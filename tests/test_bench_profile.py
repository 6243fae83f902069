"""The profile's split by stage (bench/profile.py): a sample counts for the innermost frame a stage
claims, so the client's work is told apart from the worker code that called it."""

from __future__ import annotations

from pathlib import Path

from bench.profile import report, split, stage_of

LOOP = "thread (1): MainThread;<module> (worker/__main__.py:5);Worker.step (worker/app.py:135)"


def test_each_sample_goes_to_the_innermost_stage_that_claims_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"{LOOP};KafkaPythonSource.poll (worker/kafka/kafka_python.py:200);Fetcher.fetched_records "
        "(kafka/consumer/fetcher.py:300) 30\n"
        f"{LOOP};Worker._take (worker/app.py:180);decode_message (worker/decode.py:40);dumps "
        "(json/__init__.py:231) 10\n"
        f"{LOOP};Worker._publish (worker/app.py:203);Publisher.outcomes (worker/publish.py:80);"
        "KafkaProducer.send (kafka/producer/kafka.py:600) 5\n"
        f"{LOOP};Worker._publish (worker/app.py:203);Publisher.outcomes (worker/publish.py:80);dumps "
        "(json/__init__.py:231) 5\n"
        "thread (2): kafka-python-producer-1;Thread.run (threading.py:982);Sender.run "
        "(kafka/producer/sender.py:100) 8\n"
        "thread (3): score;Thread.run (threading.py:982);RunScorer._run (worker/score.py:75);run "
        "(onnxruntime/capi/session.py:220) 40\n"
    )
    samples = split(raw)
    assert samples["MainThread"] == {"client: fetch and parse": 30, "decode": 10, "client: produce": 5,
                                     "publish: build the outputs": 5}  # fmt: skip
    assert samples["kafka-python producer's sender"] == {"client: produce": 8}
    assert samples["score"] == {"score: onnxruntime": 40}
    lines = report(samples, rate_hz=100, seconds=1.0, records=1000)
    assert "1,000 records drained in 1.0 s" in lines[0]
    main = next(line for line in lines if line.startswith("\nMainThread"))
    assert "running 50% of the drain, 500.0 us a record" in main


def test_a_frame_no_stage_claims_is_other() -> None:
    assert stage_of(["<module> (somewhere.py:1)"]) == "other"


def test_cpu_seconds_counts_a_running_process_and_not_a_gone_one() -> None:
    import os

    from bench.common import cpu_seconds

    sum(i * i for i in range(300_000))  # some CPU time of our own
    assert cpu_seconds([os.getpid()]) > 0
    assert cpu_seconds([2**22 + 7]) == 0.0  # above any pid_max default: no such process
