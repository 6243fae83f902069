"""Model bundles in the worker (worker/registry.py): refused unless they match their manifest, served
by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.worker_fakes import copy_bundle
from worker.device import CPU
from worker.registry import BundleError, ModelRegistry, load_bundle


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
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"graph input shape .* does not match the manifest"):
        load_bundle(folder, [CPU])
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(BundleError, match="not a valid manifest"):
        load_bundle(folder, [CPU])


def test_registry_versions_and_default(tiny_bundle, tmp_path: Path) -> None:
    v1 = copy_bundle(tiny_bundle, tmp_path)
    v2 = v1.parent / "2"
    shutil.copytree(v1, v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = "2"
    (v2 / "manifest.json").write_text(json.dumps(manifest))
    reg = ModelRegistry.load(tmp_path / "repo", "cpu", None, None)
    assert reg.names() == ["tiny-vae:1", "tiny-vae:2"]
    assert reg.resolve("tiny-vae").key == "tiny-vae:2" and reg.resolve("tiny-vae:1").key == "tiny-vae:1"
    assert reg.default is None  # two models and no --default-model: records must name one
    assert ModelRegistry.load(tmp_path / "repo", "cpu", None, "tiny-vae:1").default.key == "tiny-vae:1"
    with pytest.raises(BundleError, match="not among the loaded models"):
        ModelRegistry.load(tmp_path / "repo", "cpu", None, "nope")
    with pytest.raises(BundleError, match="no model bundles"):
        ModelRegistry.load(tmp_path / "repo", "cpu", "other", None)
