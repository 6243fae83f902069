"""Model versions into service without a restart (worker/serving/policy.py and watch.py; worker/swaps.py),
without a broker:
the version policy, the watcher's look at the repository, and the loop's side of a swap. On small
hand-built metric bundles (tooling/metric_bundles.py), so nothing is trained here."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from schemas import metric_message
from schemas.detect import DetectorParams
from schemas.repository import bundle_folders, copy_as_version
from schemas.settings import describe_errors
from tests.worker_fakes import flip_a_byte, message, rewrite_manifest
from tooling.metric_bundles import write_last_point_bundle
from worker.batch import Batcher, Item
from worker.decode import decode_message
from worker.kinds import kinds_for
from worker.metrics import new_metrics
from worker.score import ScoreStage
from worker.serving.device import CPU
from worker.serving.policy import choose, parse_version_policy, policy_for, read_policy_file
from worker.serving.registry import BundleError, ModelRegistry, load_bundle
from worker.serving.watch import RepositoryWatcher
from worker.settings import WorkerSettings
from worker.swaps import ModelSwaps, show_model_metrics

# --- the version policy ------------------------------------------------------------------


def test_the_policy_reads_pins_and_latest() -> None:
    assert parse_version_policy("mnist-vae=3, kpi-vae=latest") == {"mnist-vae": "3", "kpi-vae": "latest"}
    assert parse_version_policy(None) == {} and parse_version_policy("") == {}
    for bad in ("mnist-vae", "=3", "a=", "a=../3", "a=1,a=2"):
        with pytest.raises(ValueError):
            parse_version_policy(bad)
    assert policy_for(None, "m:2") == {"m": "2"}  # --default-model name:version pins name
    assert policy_for("m=2", "m:2") == {"m": "2"} and policy_for("m=latest", "m") == {"m": "latest"}
    with pytest.raises(ValueError, match="give the default model as 'm' alone"):
        policy_for("m=latest", "m:2")


def test_a_bad_policy_is_one_line_naming_the_option() -> None:
    with pytest.raises(ValidationError) as caught:
        WorkerSettings(version_policy="mnist-vae")
    assert describe_errors(WorkerSettings, caught.value).startswith(
        "invalid --version-policy / WORKER_VERSION_POLICY: 'mnist-vae' is not name=latest or name=<version>"
    )
    assert WorkerSettings().model_poll_interval_s == 10.0


def test_choose_takes_the_latest_or_the_pinned_version(tmp_path: Path) -> None:
    folders = [tmp_path / "m" / v for v in ("1", "2", "10", "exp")]
    assert choose(folders) == tmp_path / "m" / "exp"  # named versions come after numbered ones
    assert choose(folders[:3]) == tmp_path / "m" / "10"
    assert choose(folders, "2") == tmp_path / "m" / "2" and choose(folders, "02") == tmp_path / "m" / "2"
    assert choose(folders, "7") is None and choose([], "latest") is None


# --- the watcher -------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_last_point_bundle(tmp_path / "repo" / "m" / "1")
    return tmp_path / "repo"


def watcher_for(repo: Path, **options) -> tuple[RepositoryWatcher, ModelRegistry, CollectorRegistry]:
    policy = options.pop("policy", {})
    models = ModelRegistry.load(repo, "cpu", None, None, policy=policy)
    metrics, registry = new_metrics()
    for m in models:
        show_model_metrics(metrics, m)
    return RepositoryWatcher(repo, [CPU], models, metrics, policy, **options), models, registry


def looks(watcher: RepositoryWatcher, n: int = 2) -> list[str]:
    """What `n` looks made ready (a folder is judged once it stayed the same for one look)."""
    return [m.key for _ in range(n) for m in watcher.look()]


def staged(repo: Path, version: str, damage=None) -> Path:
    """Version `version` of m, a copy of version 1, made (and damaged) outside the repository and
    renamed in: the watcher sees it whole or not at all."""
    outside = repo.parent / "outside" / "m"
    outside.mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / "m" / "1", outside / "1")
    made = copy_as_version(outside / "1", version)
    shutil.rmtree(outside / "1")
    if damage is not None:
        damage(made)
    return made.rename(repo / "m" / version)


def test_a_new_version_is_checked_once_it_is_complete_and_queued(repo: Path) -> None:
    watcher, _, _ = watcher_for(repo)
    assert looks(watcher) == []
    staged(repo, "2")
    assert watcher.look() == []  # seen once: it may still be changing
    assert [m.key for m in watcher.look()] == ["m:2"]
    assert [m.key for m in watcher.ready()] == ["m:2"] and watcher.ready() == []
    assert looks(watcher, 3) == []  # in service (once the loop takes it): nothing more to do


def wrong_shape(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["input"]["shape"] = [9]
    manifest["preprocessing"]["window"] = 9
    rewrite_manifest(folder, json.dumps(manifest))


def nan_threshold(folder: Path) -> None:
    text = (folder / "manifest.json").read_text()  # the top-level threshold: indented by two
    rewrite_manifest(folder, re.sub(r'\n  "threshold": [^,]+,', '\n  "threshold": NaN,', text))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (flip_a_byte, r"model\.onnx: sha256 does not match the manifest"),
        (wrong_shape, r"graph input shape \['batch', 8\] does not match the manifest's \[batch, \*\[9\]\]"),
        (nan_threshold, r"manifest\.json: not a valid manifest: field `threshold`: must be finite"),
    ],
)
def test_a_bad_version_is_refused_once_and_the_running_one_stays(repo: Path, caplog, damage, reason) -> None:
    watcher, _, registry = watcher_for(repo)
    bad = staged(repo, "2", damage)
    with caplog.at_level(logging.ERROR, logger="worker.serving.watch"):
        assert looks(watcher, 6) == []
    [line] = [r.getMessage() for r in caplog.records]  # once, not once per look
    assert line.startswith(f"refused version 2 of m: {bad}") and line.endswith("; m:1 stays in service")
    assert re.search(reason, line), line
    assert registry.get_sample_value("anomaly_worker_model_versions_refused_total", {"model": "m"}) == 1
    # Fixed in place (its files change): checked again, and it passes.
    shutil.rmtree(bad)
    staged(repo, "2")
    assert looks(watcher) == ["m:2"]


def test_removing_the_newest_version_brings_the_older_one_back(repo: Path) -> None:
    staged(repo, "2")
    watcher, models, _ = watcher_for(repo)
    assert models.names() == ["m:2"]
    shutil.rmtree(repo / "m" / "2")
    assert looks(watcher) == ["m:1"]


def test_a_pinned_version_stays_while_newer_ones_come(repo: Path, caplog) -> None:
    watcher, models, _ = watcher_for(repo, policy={"m": "1"})
    staged(repo, "2")
    assert looks(watcher, 4) == [] and models.names() == ["m:1"]
    shutil.rmtree(repo / "m" / "1")  # the pinned version gone: the one in memory stays
    with caplog.at_level(logging.WARNING, logger="worker.serving.watch"):
        assert looks(watcher, 4) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"m: no version under {repo} fits its policy (pinned to 1); m:1 stays in service"
    ]


def test_staging_folders_are_never_versions(repo: Path) -> None:
    """Training (and copy_as_version) write into .<version>.partial-* and rename at the end: a complete
    bundle in a staging folder is still not a version, and leaves nothing behind."""
    hidden = repo / "m" / ".2.partial-x1"
    shutil.copytree(repo / "m" / "1", hidden)
    rewrite_manifest(
        hidden, (hidden / "manifest.json").read_text().replace('"version": "1"', '"version": "2"')
    )
    watcher, _, _ = watcher_for(repo)
    assert looks(watcher, 3) == [] and bundle_folders(repo) == [repo / "m" / "1"]
    copy_as_version(repo / "m" / "1", "3")
    assert sorted(p.name for p in (repo / "m").iterdir()) == [".2.partial-x1", "1", "3"]
    with pytest.raises(FileExistsError):
        copy_as_version(repo / "m" / "1", "3")


def test_a_new_model_name_is_served_and_a_clash_of_names_is_refused(repo: Path) -> None:
    watcher, _, _ = watcher_for(repo)
    write_last_point_bundle(repo / "other" / "1")
    assert looks(watcher) == ["other:1"]
    clash = repo / "copy" / "1"
    shutil.copytree(repo / "m" / "1", clash)  # its manifest says m
    assert looks(watcher) == []


def test_a_new_model_is_served_when_the_providers_carry_options(repo: Path) -> None:
    # on a GPU choose_providers gives (name, options) pairs: a new model was refused for not matching one
    policy: dict = {}
    models = ModelRegistry.load(repo, "cpu", None, None, policy=policy)
    metrics, _ = new_metrics()
    watcher = RepositoryWatcher(repo, [(CPU, {})], models, metrics, policy)
    write_last_point_bundle(repo / "other" / "1")
    assert looks(watcher) == ["other:1"]


# --- the loop's side ---------------------------------------------------------------------


class Handing:
    """A watcher that hands the loop the versions it is given."""

    def __init__(self) -> None:
        self.queued: list = []

    def ready(self) -> list:
        out, self.queued = self.queued, []
        return out


def point(i: int, series: str = "s") -> tuple[bytes, bytes]:
    return metric_message(series, float(i % 5), ts=f"2026-11-22T10:{i:02d}:00Z")


def push(kinds, models, i: int) -> Item | None:
    key, value = point(i)
    decoded = decode_message(message(value, i, key=key), models, kinds, 1 << 20)
    return decoded[1] if isinstance(decoded, tuple) else None


@pytest.mark.parametrize("window", [8, 12])
def test_a_swap_between_batches(tmp_path: Path, window: int, caplog) -> None:
    """The old version's open batch is scored by it, the new version's records go to its own batches,
    the series carry over when the windows are made alike (else the log says why), the gauges follow,
    and the old session is let go once its last batch is published."""
    repo = tmp_path / "repo"
    write_last_point_bundle(repo / "m" / "1", detector=DetectorParams(warmup=0))
    write_last_point_bundle(repo / "m" / "2", window=window, detector=DetectorParams(warmup=0, threshold=4.0))
    settings = WorkerSettings(metrics_port=0)
    models = ModelRegistry.load(repo, "cpu", None, None, policy={"m": "1"})
    metrics, registry = new_metrics()
    show_model_metrics(metrics, models.resolve("m"))
    kinds = kinds_for(models, settings)
    batcher, scoring, handing = Batcher(100, 60_000), ScoreStage(100), Handing()
    swaps = ModelSwaps(handing, models, kinds, batcher, scoring, metrics, settings)
    try:
        for i in range(10):  # the 8th point fills the first window: three items in m:1's open batch
            item = push(kinds, models, i)
            if item is not None:
                batcher.add(kinds["m:1"], item)
        assert len(batcher) == 3
        old_windows = kinds["m:1"].windows
        v2 = load_bundle(repo / "m" / "2", [CPU])
        handing.queued = [v2]
        with caplog.at_level(logging.WARNING, logger="worker.serving.watch"):
            swaps.apply()
        assert models.resolve("m") is v2 and list(kinds) == ["m:2"]
        [formed] = scoring.in_flight()  # handed to scoring at the swap, ready or not
        assert formed.model.key == "m:1" and len(formed.items) == 3 and len(batcher) == 0
        if window == 8:
            assert kinds["m:2"].windows is old_windows and caplog.records == []
            assert push(kinds, models, 10) is not None  # the series goes on: no warm-up
        else:
            assert kinds["m:2"].windows is not old_windows
            assert "the series start afresh (they warm up again): window 8 -> 12" in caplog.text
            assert push(kinds, models, 10) is None  # warming again
        sample = registry.get_sample_value
        assert sample("anomaly_worker_model_version", {"model": "m"}) == 2
        assert sample("anomaly_worker_model_threshold", {"model": "m:1"}) is None
        assert sample("anomaly_worker_model_threshold", {"model": "m:2"}) == 4.0
        info = {"model": "m", "provider": CPU}
        assert sample("anomaly_worker_model_info", {**info, "version": "1"}) is None
        assert sample("anomaly_worker_model_info", {**info, "version": "2"}) == 1
        assert [m.key for m in swaps.retiring] == ["m:1"]
        swaps.apply()
        assert len(swaps.retiring) == 1  # its batch is not published yet
        [done] = scoring.completed(wait_s=30)
        assert done.error is None and np.isfinite(done.scores).all()
        scoring.finish(done.batch)
        swaps.apply()
        assert swaps.retiring == []
    finally:
        scoring.close()


def test_training_writes_a_bundle_the_watcher_never_sees_half_of(tmp_path: Path) -> None:
    """training.core.steps.write_bundle fills a hidden staging folder beside the target and renames it
    into place: while it writes, the repository has no new version; after, a whole one."""
    from training.core.steps import write_bundle

    made = write_last_point_bundle(tmp_path / "made" / "m" / "1")
    repo, out = tmp_path / "repo", tmp_path / "repo" / "m" / "1"
    seen_while_writing: list = []

    class Steps:
        def export(self, folder: Path) -> None:
            shutil.copy(tmp_path / "made" / "m" / "1" / "model.onnx", folder / "model.onnx")
            seen_while_writing.append((folder.name, bundle_folders(repo), out.exists()))

        def calibrate(self, model_path: Path) -> None:
            pass

        def evaluate(self, model_path: Path) -> object:
            seen_while_writing.append((model_path.parent.name, bundle_folders(repo), out.exists()))
            return {}

        def report(self, folder: Path) -> None:
            pass

        def manifest(self, files: dict[str, str]):
            return made.model_copy(update={"files": files})

    fitted = type("Fitted", (), {"as_dict": lambda self: {}})()
    write_bundle(out, Steps(), fitted, report=False, log=lambda _: None)
    assert all(name.startswith(".1.partial-") and listed == [] and not there
               for name, listed, there in seen_while_writing)  # fmt: skip
    assert bundle_folders(repo) == [out] and sorted(p.name for p in (repo / "m").iterdir()) == ["1"]
    assert load_bundle(out, [CPU]).key == "m:1"


def test_a_pin_in_the_policy_file_rolls_back_without_a_restart(repo: Path, caplog) -> None:
    staged(repo, "2")
    pins = repo.parent / "policy"
    pins.write_text("# pins\n\n")
    assert read_policy_file(pins) == {}
    watcher, models, registry = watcher_for(repo, policy_source=lambda: policy_for(None, None, pins))
    assert models.names() == ["m:2"] and looks(watcher) == []
    pins.write_text("mm=1  # a typo: the same file is an error at start\n")
    with caplog.at_level(logging.ERROR, logger="worker.serving.watch"):
        assert looks(watcher, 4) == []  # refused: m stays on the latest
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("version policy file refused: it names mm, which the repository") and \
        "(models there: m); the policy stays latest for every model" in line  # fmt: skip
    assert registry.get_sample_value("anomaly_worker_version_policy_refused_total") == 1
    caplog.clear()
    pins.write_text("m=1\n")
    assert looks(watcher) == ["m:1"]
    pins.write_text("m=")  # a broken file: said once, counted once, the policy stays
    with caplog.at_level(logging.ERROR, logger="worker.serving.watch"):
        assert looks(watcher, 4) == []
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"version policy file refused: {pins}: 'm=' is not name=latest") and \
        "the policy stays m=1" in line  # fmt: skip
    assert registry.get_sample_value("anomaly_worker_version_policy_refused_total") == 2
    pins.write_text("m=latest")
    assert looks(watcher) == ["m:2"]


def test_a_version_folder_without_a_manifest_is_said_once(repo: Path, caplog) -> None:
    watcher, _, _ = watcher_for(repo)
    (repo / "m" / "2").mkdir()  # a copy that has not got its manifest yet
    with caplog.at_level(logging.WARNING):
        assert looks(watcher, 5) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{repo / 'm' / '2'}: no manifest.json, so not a bundle (yet)"
    ]


def test_removing_the_version_in_service_falls_back_past_a_refused_one(repo: Path, caplog) -> None:
    """1 passes, 2 was refused, 3 serves: 3 removed, the newest version that passes (1) serves; with
    1 gone too, the worker keeps 3 from memory and says so at WARNING at every look."""
    watcher, _, registry = watcher_for(repo)
    staged(repo, "2", flip_a_byte)
    assert looks(watcher, 3) == []  # 2 refused: 1 stays
    staged(repo, "3")
    assert looks(watcher) == ["m:3"]
    shutil.rmtree(repo / "m" / "3")
    assert looks(watcher) == ["m:1"]  # not 2, which is refused as it is, and not 3 from memory
    assert registry.get_sample_value("anomaly_worker_model_versions_refused_total", {"model": "m"}) == 1
    staged(repo, "3")
    assert looks(watcher) == ["m:3"]
    shutil.rmtree(repo / "m" / "3")
    shutil.rmtree(repo / "m" / "1")
    with caplog.at_level(logging.WARNING, logger="worker.serving.watch"):
        assert looks(watcher, 3) == []
    lines = [r.getMessage() for r in caplog.records if "was removed" in r.getMessage()]
    assert len(lines) == 3 and all(
        line == f"m: its folder {repo / 'm' / '3'} was removed and no version left under {repo} passes its "
        "checks; m:3 keeps serving from memory until one does" for line in lines
    ), lines  # fmt: skip


def test_a_bundle_copied_in_file_by_file_is_waited_for_not_refused(repo: Path, caplog) -> None:
    """The manifest first, then each file after a pause of several looks: never counted as refused,
    said once, and served once complete."""
    watcher, _, registry = watcher_for(repo)
    whole = staged(repo, "2").rename(repo.parent / "whole")
    target = repo / "m" / "2"
    target.mkdir()
    files = sorted(p.name for p in whole.iterdir())
    first = ["manifest.json", *[f for f in files if f != "manifest.json"]]
    with caplog.at_level(logging.WARNING, logger="worker.serving.watch"):
        for name in first[:-1]:
            shutil.copy2(whole / name, target / name)
            assert looks(watcher, 3) == []
    shutil.copy2(whole / first[-1], target / first[-1])
    assert looks(watcher) == ["m:2"]
    assert registry.get_sample_value("anomaly_worker_model_versions_refused_total", {"model": "m"}) == 0
    waits = [r.getMessage() for r in caplog.records if "waiting for the rest of its files" in r.getMessage()]
    assert len(waits) == 1 and "publish bundles whole: python -m training publish" in waits[0], waits


def test_a_non_finite_warm_up_score_is_said_as_such(repo: Path, monkeypatch) -> None:
    from worker.serving import registry as registry_module

    real_run = registry_module.ort.InferenceSession.run

    def nan_scores(self, names, feeds, *args):
        out = real_run(self, names, feeds, *args)
        return [np.full_like(out[0], np.nan)]

    monkeypatch.setattr(registry_module.ort.InferenceSession, "run", nan_scores)
    with pytest.raises(registry_module.BundleError, match="warm-up on an all-zero batch gave non-finite"):
        load_bundle(repo / "m" / "1", [CPU])


def test_a_copied_folder_is_refused_naming_the_publish_command_which_publishes_it(repo: Path) -> None:
    from training.cli import main as training

    watcher, _, _ = watcher_for(repo)
    shutil.copytree(repo / "m" / "1", repo / "m" / "2")  # cp -r 1 2: its manifest says 1
    with pytest.raises(BundleError, match=r"to publish a copy as a new version, use python -m training"):
        load_bundle(repo / "m" / "2", [CPU])
    shutil.rmtree(repo / "m" / "2")
    assert training(["publish", str(repo / "m" / "1")]) == 0  # the next number: 2
    assert load_bundle(repo / "m" / "2", [CPU]).key == "m:2"
    assert looks(watcher) == ["m:2"]
    assert training(["publish", str(repo / "m" / "1"), "--version", "2"]) == 1  # exists already
    assert training(["publish", str(repo / "m" / "1"), "--version", "canary"]) == 0
    assert load_bundle(repo / "m" / "canary", [CPU]).manifest.version == "canary"
