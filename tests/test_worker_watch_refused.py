"""What the watcher tells Prometheus about refused versions (issue 29): a model's refusal counter
exists at 0 before any of its versions is judged, and `model_newest_version_refused` holds 1 exactly
while a refused version newer than the one in service is still in the repository.
deploy/prometheus/tests/ checks the alert built on them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.test_worker_watch import looks, staged, watcher_for
from tests.worker_fakes import flip_a_byte
from tooling.metric_bundles import write_last_point_bundle

REFUSED = "anomaly_worker_model_versions_refused_total"
NEWEST_REFUSED = "anomaly_worker_model_newest_version_refused"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_last_point_bundle(tmp_path / "repo" / "m" / "1")
    return tmp_path / "repo"


def sample(registry: CollectorRegistry, name: str, model: str = "m") -> float | None:
    return registry.get_sample_value(name, {"model": model})


def placed(repo: Path, name: str, version: str, damage=None) -> Path:
    """A bundle made outside the repository and renamed in whole (as training and publish do)."""
    made = repo.parent / "outside" / name / version
    write_last_point_bundle(made)
    if damage is not None:
        damage(made)
    (repo / name).mkdir(exist_ok=True)
    return made.rename(repo / name / version)


def test_a_served_model_has_both_series_at_0_from_the_start(repo: Path) -> None:
    _, _, registry = watcher_for(repo)
    assert sample(registry, REFUSED) == 0 and sample(registry, NEWEST_REFUSED) == 0


def test_a_new_model_counts_from_0_and_its_refused_first_version_is_flagged(repo: Path) -> None:
    watcher, _, registry = watcher_for(repo)
    placed(repo, "other", "1", flip_a_byte)
    assert watcher.look() == []  # seen, not judged yet: one look to settle
    # Both series exist at 0 before the refusal, so a scrape in between sees 0 -> 1.
    assert sample(registry, REFUSED, "other") == 0 and sample(registry, NEWEST_REFUSED, "other") == 0
    assert looks(watcher, 1) == []
    assert sample(registry, REFUSED, "other") == 1 and sample(registry, NEWEST_REFUSED, "other") == 1
    assert looks(watcher, 5) == [] and sample(registry, NEWEST_REFUSED, "other") == 1  # it stays
    assert sample(registry, NEWEST_REFUSED) == 0  # m is not concerned
    shutil.rmtree(repo / "other")
    assert looks(watcher, 1) == [] and sample(registry, NEWEST_REFUSED, "other") == 0
    assert sample(registry, REFUSED, "other") == 1  # a counter never goes back


def test_the_flag_holds_while_the_refused_version_is_newest_and_clears_when_a_newer_one_passes(
    repo: Path,
) -> None:
    watcher, _, registry = watcher_for(repo)
    bad = staged(repo, "2", flip_a_byte)
    assert looks(watcher, 8) == []
    assert sample(registry, REFUSED) == 1 and sample(registry, NEWEST_REFUSED) == 1
    # Rewritten in place, still bad: it stays flagged while its files settle and after the new check.
    with (bad / "model.onnx").open("ab") as graph:
        graph.write(b"\0")
    assert watcher.look() == [] and sample(registry, NEWEST_REFUSED) == 1
    assert looks(watcher, 2) == [] and sample(registry, NEWEST_REFUSED) == 1
    assert sample(registry, REFUSED) == 2
    staged(repo, "3")  # a newer good version: 2 is now older than the one in service
    assert looks(watcher) == ["m:3"] and sample(registry, NEWEST_REFUSED) == 0
    # 3 removed: 1 serves again, below the refused 2, which is the newest version there again.
    shutil.rmtree(repo / "m" / "3")
    assert looks(watcher) == ["m:1"] and sample(registry, NEWEST_REFUSED) == 1


def test_the_flag_clears_when_the_refused_folder_is_fixed_or_removed(repo: Path) -> None:
    watcher, _, registry = watcher_for(repo)
    bad = staged(repo, "2", flip_a_byte)
    assert looks(watcher, 3) == [] and sample(registry, NEWEST_REFUSED) == 1
    shutil.rmtree(bad)
    assert looks(watcher, 1) == [] and sample(registry, NEWEST_REFUSED) == 0
    staged(repo, "2", flip_a_byte)
    assert looks(watcher, 3) == [] and sample(registry, NEWEST_REFUSED) == 1
    shutil.rmtree(repo / "m" / "2")
    staged(repo, "2")  # fixed: the same version, good files
    assert looks(watcher) == ["m:2"] and sample(registry, NEWEST_REFUSED) == 0


def test_a_version_the_policy_does_not_allow_is_never_flagged(repo: Path) -> None:
    watcher, _, registry = watcher_for(repo, policy={"m": "1"})
    staged(repo, "2", flip_a_byte)
    assert looks(watcher, 4) == []
    assert sample(registry, REFUSED) == 0 and sample(registry, NEWEST_REFUSED) == 0
