"""Model bundles in the worker (worker/serving/registry.py): refused unless they match their manifest, served
by name."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from tests.worker_fakes import copy_bundle, rewrite_manifest
from worker.serving.device import CPU
from worker.serving.registry import BundleError, ModelRegistry, load_bundle


def test_corrupted_model_is_refused_with_the_reason(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model.onnx: sha256 does not match the manifest"):
        load_bundle(folder, [CPU])


def test_bundle_with_a_missing_file_or_a_bad_manifest_is_refused(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    (folder / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"decoder\.onnx is listed in the manifest but missing"):
        load_bundle(folder, [CPU])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["input"]["shape"] = [32, 32]
    manifest["preprocessing"]["record_shape"] = [32, 32]
    del manifest["files"]["decoder.onnx"]
    rewrite_manifest(folder, json.dumps(manifest))
    with pytest.raises(BundleError, match=r"graph input shape .* does not match the manifest"):
        load_bundle(folder, [CPU])
    rewrite_manifest(folder, "{}")
    with pytest.raises(BundleError, match="not a valid manifest"):
        load_bundle(folder, [CPU])


def test_registry_versions_and_default(tiny_bundle, tmp_path: Path) -> None:
    v1 = copy_bundle(tiny_bundle, tmp_path)
    v2 = v1.parent / "2"
    shutil.copytree(v1, v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = "2"
    rewrite_manifest(v2, json.dumps(manifest))
    reg = ModelRegistry.load(tmp_path / "repo", "cpu", None, None)
    # One version per model is served: the latest by default.
    assert reg.names() == ["tiny-vae:2"]
    assert reg.resolve("tiny-vae").key == "tiny-vae:2" and reg.resolve("tiny-vae:2").key == "tiny-vae:2"
    assert reg.resolve("tiny-vae:1") is None  # not in service: its records are dead-lettered
    assert reg.default.key == "tiny-vae:2"  # the only model
    pinned = ModelRegistry.load(tmp_path / "repo", "cpu", None, None, policy={"tiny-vae": "1"})
    assert pinned.names() == ["tiny-vae:1"] and pinned.resolve("tiny-vae").key == "tiny-vae:1"
    assert ModelRegistry.load(tmp_path / "repo", "cpu", "tiny-vae:1", None).names() == ["tiny-vae:1"]
    with pytest.raises(BundleError, match=r"no version 3 of tiny-vae .* versions there: 1, 2"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, None, policy={"tiny-vae": "3"})
    with pytest.raises(BundleError, match="not among the loaded models"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, "nope")
    with pytest.raises(BundleError, match="not among the loaded models"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, "tiny-vae:1")  # the policy serves 2
    with pytest.raises(BundleError, match=r"no model bundles .* --models other; models there: tiny-vae"):
        ModelRegistry.load(tmp_path / "repo", "cpu", "other", None)


# --- The manifest itself, and where its files and versions may be. ---


def edit(folder: Path, **changes: object) -> None:
    """Change top-level fields of the bundle's manifest and re-sign it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    rewrite_manifest(folder, json.dumps(manifest))


def test_a_manifest_changed_after_training_is_refused_naming_it(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    data = bytearray((folder / "manifest.json").read_bytes())
    data[data.index(b'"threshold": ') + len(b'"threshold": ')] ^= 0x01  # one digit of the threshold
    (folder / "manifest.json").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"manifest\.json: sha256 does not match manifest\.sha256"):
        load_bundle(folder, [CPU])


def test_a_bundle_without_a_manifest_checksum_loads_with_a_warning(
    tiny_bundle, tmp_path: Path, caplog
) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    (folder / "manifest.sha256").unlink()
    with caplog.at_level(logging.WARNING):
        assert load_bundle(folder, [CPU]).key == "tiny-vae:1"
    assert "no manifest.sha256 beside it; the manifest is unchecked" in caplog.text


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("NaN", "must be finite (got nan)"),
        ("Infinity", "must be finite (got inf)"),
        ("-1", "must not be negative"),
    ],
)
def test_a_threshold_that_is_not_finite_or_negative_is_refused(
    tiny_bundle, tmp_path: Path, threshold: str, message: str
) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    text = re.sub(
        r'\n  "threshold": [^,]+,', f'\n  "threshold": {threshold},', (folder / "manifest.json").read_text()
    )
    rewrite_manifest(folder, text)
    with pytest.raises(BundleError) as caught:
        load_bundle(folder, [CPU])
    assert str(caught.value).startswith(
        f"{folder / 'manifest.json'}: not a valid manifest: field `threshold`: {message}"
    )


@pytest.mark.parametrize("name", ["../1-model.onnx", "/tmp/model.onnx"])
def test_a_listed_file_outside_the_bundle_is_refused(tiny_bundle, tmp_path: Path, name: str) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    files = json.loads((folder / "manifest.json").read_text())["files"]
    edit(folder, files={**files, name: files["model.onnx"]})
    with pytest.raises(
        BundleError, match=rf"field `files`: '{re.escape(name)}' is not a relative path inside"
    ):
        load_bundle(folder, [CPU])


def test_a_listed_file_that_links_out_of_the_bundle_is_refused(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    outside = tmp_path / "model.onnx"
    (folder / "model.onnx").rename(outside)
    (folder / "model.onnx").symlink_to(outside)  # same bytes, same hash: only the path gives it away
    with pytest.raises(
        BundleError, match=r"model\.onnx: listed in the manifest but leads outside the bundle"
    ):
        load_bundle(folder, [CPU])


def test_a_manifest_whose_version_is_not_its_folder_is_refused(tiny_bundle, tmp_path: Path) -> None:
    folder = copy_bundle(tiny_bundle, tmp_path)
    edit(folder, version="2")
    with pytest.raises(BundleError, match=r"says version '2' but its folder is '1'"):
        load_bundle(folder, [CPU])


def test_two_folders_of_one_version_stop_the_registry_naming_both(tiny_bundle, tmp_path: Path) -> None:
    v1 = copy_bundle(tiny_bundle, tmp_path)
    shutil.copytree(v1, v1.parent / "01")
    with pytest.raises(BundleError, match=r"tiny-vae/01 and .*tiny-vae/1 claim the same version of tiny-vae"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, None)


def test_two_bundles_that_claim_one_name_and_version_are_refused(tiny_bundle, tmp_path: Path) -> None:
    copy_bundle(tiny_bundle, tmp_path)
    shutil.copytree(tmp_path / "repo" / "tiny-vae", tmp_path / "repo" / "copy")  # its manifest says tiny-vae
    with pytest.raises(BundleError, match=r"copy/1 and .*tiny-vae/1 both hold tiny-vae:1"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, None)


def test_a_version_folder_without_a_manifest_is_skipped_loudly(tiny_bundle, tmp_path: Path, caplog) -> None:
    copy_bundle(tiny_bundle, tmp_path)
    (tmp_path / "repo" / "tiny-vae" / "2").mkdir()
    with caplog.at_level(logging.WARNING):
        assert ModelRegistry.load(tmp_path / "repo", "cpu", None, None).names() == ["tiny-vae:1"]
    assert (
        f"{tmp_path / 'repo' / 'tiny-vae' / '2'}: no manifest.json, so not a bundle; skipped" in caplog.text
    )
