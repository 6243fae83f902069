"""The model repository's layout and its one version rule (schemas.repository), shared by every side."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import MANIFEST_FILE
from schemas.repository import (
    RepositoryError,
    bundle_folders,
    latest_bundle_folder,
    next_version_folder,
    version_key,
)

REPO = Path(__file__).resolve().parents[1]


def make(repository: Path, name: str, version: str, manifest: bool = True) -> Path:
    folder = repository / name / version
    folder.mkdir(parents=True)
    if manifest:
        (folder / MANIFEST_FILE).write_text("{}")
    return folder


def test_versions_order_numerically_then_by_name() -> None:
    assert sorted(["10", "2", "b", "1", "a"], key=version_key) == ["1", "2", "10", "a", "b"]


def test_latest_is_by_that_order_and_ignores_folders_without_a_manifest(tmp_path: Path) -> None:
    for v in ("1", "2", "10"):
        make(tmp_path, "m", v)
    make(tmp_path, "m", "11", manifest=False)  # not a bundle (yet)
    make(tmp_path, "other", "99")
    assert latest_bundle_folder(tmp_path, "m") == tmp_path / "m" / "10"
    assert latest_bundle_folder(tmp_path, "none") is None
    assert bundle_folders(tmp_path) == sorted(
        [tmp_path / "m" / v for v in ("1", "10", "2")] + [tmp_path / "other" / "99"]
    )
    assert bundle_folders(tmp_path, "other") == [tmp_path / "other" / "99"]


def test_next_version_follows_every_numbered_folder(tmp_path: Path) -> None:
    assert next_version_folder(tmp_path, "m") == tmp_path / "m" / "1"
    make(tmp_path, "m", "2")
    make(tmp_path, "m", "9", manifest=False)  # a folder there must never be written into
    make(tmp_path, "m", "exp")
    assert next_version_folder(tmp_path, "m") == tmp_path / "m" / "10"


def test_the_repository_module_imports_neither_torch_nor_onnxruntime() -> None:
    code = "import sys, schemas.repository; assert not {'torch', 'onnxruntime'} & set(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_version_folder_without_a_manifest_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, caplog
) -> None:
    make(tmp_path, "m", "1")
    unfinished = make(tmp_path, "m", "2", manifest=False)
    make(tmp_path, "m", ".3.partial-abc", manifest=False)  # training's staging folder: not a version
    with caplog.at_level(logging.WARNING, logger="schemas.repository"):
        assert bundle_folders(tmp_path) == [tmp_path / "m" / "1"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{unfinished}: no manifest.json, so not a bundle; skipped"
    ]


@pytest.mark.parametrize("versions", [("3", "03"), ("3", "003"), ("03", "3")])
def test_two_folders_that_claim_one_version_are_refused_naming_both(tmp_path: Path, versions: tuple) -> None:
    for v in versions:
        make(tmp_path, "m", v)
    a, b = sorted(tmp_path / "m" / v for v in versions)
    with pytest.raises(
        RepositoryError, match=rf"^{re.escape(str(a))} and {re.escape(str(b))} claim the same version"
    ):
        bundle_folders(tmp_path)
    with pytest.raises(RepositoryError):
        latest_bundle_folder(tmp_path, "m")
    make(tmp_path, "other", "3")  # the same version of another name is no clash
    assert bundle_folders(tmp_path, "other") == [tmp_path / "other" / "3"]
