"""Model versions swapped while records stream through the real broker (worker/serving/watch.py): a new good
version, bad versions refused, a rollback. Every record is scored exactly once, and per partition the
version in its outputs changes at exactly one offset."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from schemas import image_message
from schemas.repository import copy_as_version
from tests.worker_fakes import copy_bundle, flip_a_byte, rewrite_manifest
from tests.worker_harness import WorkerThread, committed, end_offsets, read_json, wait_for, worker_settings
from tooling.kafka import SteadyStream
from training.images.mnist import load_split

pytestmark = pytest.mark.integration


def stream(bootstrap: str, topic: str) -> SteadyStream:
    """Image records produced the whole time, about 200 a second, until stopped: ids s/0, s/1, ..."""
    test = load_split("test")
    images = test.images[np.isin(test.labels, (1, 4))][:50]
    return SteadyStream(bootstrap, topic, lambda i: image_message(images[i % 50], id=f"s/{i}"), 10, 0.05)


@pytest.fixture
def topics(worker_topics) -> dict[str, str]:
    return worker_topics("swap")


@pytest.fixture
def repo(tiny_bundle, tmp_path: Path) -> Path:
    copy_bundle(tiny_bundle, tmp_path)  # <tmp_path>/repo/tiny-vae/1
    return tmp_path / "repo"


def swap_settings(bootstrap: str, repo: Path, topics: dict[str, str]):
    return worker_settings(bootstrap, repo, topics, model_poll_interval_s=0.2, max_batch=16,
                           commit_interval_ms=100)  # fmt: skip


def scored_by(w: WorkerThread, key: str) -> float:
    return w.sample("anomaly_worker_records_scored_total", model=key)


def run_through(kafka_bootstrap: str, topics: dict[str, str], w: WorkerThread,
                stream: SteadyStream) -> list[dict]:  # fmt: skip
    """Stop the stream, wait until the worker committed everything, stop it: every output."""
    stream.stop()
    assert wait_for(lambda: committed(kafka_bootstrap, topics["group"], topics["input"])
                    == end_offsets(kafka_bootstrap, topics["input"]), 120)  # fmt: skip
    w.stop()
    assert w.error is None
    outputs = read_json(kafka_bootstrap, topics["alerts"]) + read_json(kafka_bootstrap, topics["scores"])
    assert read_json(kafka_bootstrap, topics["dead"], timeout_s=5) == []
    # Exactly once: one output per record sent, none twice.
    assert sorted(o["record_id"] for o in outputs) == sorted(f"s/{i}" for i in range(stream.sent))
    return outputs


def versions_by_partition(outputs: list[dict]) -> dict[int, list[str]]:
    """Per input partition, the versions that scored its records in offset order, runs collapsed."""
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for o in outputs:
        by_partition[o["source"]["partition"]].append((o["source"]["offset"], o["model_version"]))
    runs = {}
    for p, scored in by_partition.items():
        offsets = [off for off, _ in sorted(scored)]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))  # none missing, none twice
        runs[p] = [v for v, _ in itertools.groupby(v for _, v in sorted(scored))]
    return runs


def test_a_new_version_takes_over_mid_stream_at_one_offset_per_partition(
    kafka_bootstrap, topics, repo: Path
) -> None:
    with (
        WorkerThread(swap_settings(kafka_bootstrap, repo, topics)) as w,
        stream(kafka_bootstrap, topics["input"]) as s,
    ):
        assert wait_for(lambda: scored_by(w, "tiny-vae:1") >= 200)
        copy_as_version(repo / "tiny-vae" / "1", "2")  # staged beside it, renamed into place
        assert wait_for(lambda: scored_by(w, "tiny-vae:2") >= 200)
        assert w.sample("anomaly_worker_model_version", model="tiny-vae") == 2
        assert w.registry.get_sample_value("anomaly_worker_model_threshold", {"model": "tiny-vae:1"}) is None
        outputs = run_through(kafka_bootstrap, topics, w, s)
    runs = versions_by_partition(outputs)
    assert set(runs) == {0, 1} and all(r == ["1", "2"] for r in runs.values()), runs
    assert (
        w.sample("anomaly_worker_model_info", model="tiny-vae", version="2", provider="CPUExecutionProvider")
        == 1
    )
    assert (
        w.registry.get_sample_value(
            "anomaly_worker_model_info",
            {"model": "tiny-vae", "version": "1", "provider": "CPUExecutionProvider"},
        )
        is None
    )
    assert w.sample("anomaly_worker_model_versions_refused_total", model="tiny-vae") == 0


def wrong_shape(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["input"]["shape"] = manifest["preprocessing"]["record_shape"] = [32, 32]
    rewrite_manifest(folder, json.dumps(manifest))


def nan_threshold(folder: Path) -> None:
    text = (folder / "manifest.json").read_text()
    rewrite_manifest(folder, re.sub(r'\n  "threshold": [^,]+,', '\n  "threshold": NaN,', text))


def place(repo: Path, version: str, damage) -> Path:
    """Version `version` of tiny-vae, a damaged copy of version 1, renamed into the repository whole."""
    outside = repo.parent / f"outside-{version}"
    made = copy_as_version(shutil.copytree(repo / "tiny-vae" / "1", outside / "1"), version)
    damage(made)
    return made.rename(repo / "tiny-vae" / version)


def test_bad_versions_are_refused_once_and_scoring_goes_on_with_the_running_one(
    kafka_bootstrap, topics, repo: Path, caplog
) -> None:
    refused = lambda: w.sample("anomaly_worker_model_versions_refused_total", model="tiny-vae")  # noqa: E731
    with (
        caplog.at_level(logging.INFO, logger="worker.serving.watch"),
        WorkerThread(swap_settings(kafka_bootstrap, repo, topics)) as w,
        stream(kafka_bootstrap, topics["input"]) as s,
    ):
        assert wait_for(lambda: scored_by(w, "tiny-vae:1") >= 100)
        for n, (version, damage) in enumerate(
            [("2", flip_a_byte), ("3", wrong_shape), ("4", nan_threshold)], start=1
        ):
            place(repo, version, damage)
            assert wait_for(lambda n=n: refused() >= n)
            before = scored_by(w, "tiny-vae:1")
            assert wait_for(lambda before=before: scored_by(w, "tiny-vae:1") >= before + 100)  # still serving
        outputs = run_through(kafka_bootstrap, topics, w, s)
    assert refused() == 3 and w.sample("anomaly_worker_model_version", model="tiny-vae") == 1
    assert {o["model_version"] for o in outputs} == {"1"}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    # Once each, although the watcher looked every 0.2 s while each was the newest.
    assert len(lines) == 3 and all(line.endswith("; tiny-vae:1 stays in service") for line in lines)
    assert "model.onnx: sha256 does not match the manifest" in lines[0]
    assert "graph input shape" in lines[1] and "does not match the manifest" in lines[1]
    assert "field `threshold`: must be finite" in lines[2]


def test_removing_the_newest_version_rolls_back_mid_stream(kafka_bootstrap, topics, repo: Path) -> None:
    copy_as_version(repo / "tiny-vae" / "1", "2")
    with (
        WorkerThread(swap_settings(kafka_bootstrap, repo, topics)) as w,
        stream(kafka_bootstrap, topics["input"]) as s,
    ):
        assert wait_for(lambda: scored_by(w, "tiny-vae:2") >= 200)
        shutil.rmtree(repo / "tiny-vae" / "2")
        assert wait_for(lambda: scored_by(w, "tiny-vae:1") >= 200)
        outputs = run_through(kafka_bootstrap, topics, w, s)
    runs = versions_by_partition(outputs)
    assert set(runs) == {0, 1} and all(r == ["2", "1"] for r in runs.values()), runs
    assert w.sample("anomaly_worker_model_version", model="tiny-vae") == 1
    assert not os.path.exists(repo / "tiny-vae" / "2")


def test_pinning_an_older_version_in_the_policy_file_rolls_back_mid_stream(
    kafka_bootstrap, topics, repo: Path
) -> None:
    copy_as_version(repo / "tiny-vae" / "1", "2")
    pins = repo.parent / "version-policy"
    pins.write_text("# empty: the latest of each model\n")
    settings = swap_settings(kafka_bootstrap, repo, topics).model_copy(update={"version_policy_file": pins})
    with WorkerThread(settings) as w, stream(kafka_bootstrap, topics["input"]) as s:
        assert wait_for(lambda: scored_by(w, "tiny-vae:2") >= 200)
        pins.write_text("tiny-vae=1\n")
        assert wait_for(lambda: scored_by(w, "tiny-vae:1") >= 200)
        outputs = run_through(kafka_bootstrap, topics, w, s)
    runs = versions_by_partition(outputs)
    assert set(runs) == {0, 1} and all(r == ["2", "1"] for r in runs.values()), runs
    assert (repo / "tiny-vae" / "2").is_dir()  # still there, no longer served
