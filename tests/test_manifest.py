"""ModelManifest and its calibration: the contract between training and worker."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import MANIFEST_FILE, Calibration, ImagePreprocessing, ModelManifest, ScoreSpec, TensorSpec
from schemas.manifest import (
    MANIFEST_CHECKSUM_FILE,
    ManifestError,
    bundle_path,
    describe_validation_error,
    load_manifest,
    manifest_checksum_line,
    write_manifest_file,
)


def calibration(**kw: object) -> Calibration:
    base = dict(
        method="percentile",
        percentile=99.0,
        threshold=120.0,
        score_min=20.0,
        score_max=220.0,
        n_scores=1000,
        data="training normals",
    )
    base.update(kw)
    return Calibration(**base)


def manifest(**kw: object) -> ModelManifest:
    base = dict(
        name="mnist-vae",
        version="1",
        kind="image",
        created_at=datetime.now(UTC),
        input=TensorSpec(name="images", shape=[28, 28]),
        outputs={"score": TensorSpec(name="score", shape=[])},
        opset=17,
        preprocessing=ImagePreprocessing(record_shape=[28, 28]),
        score=ScoreSpec(function="bce_sum"),
        threshold=120.0,
        calibration=calibration(),
        files={"model.onnx": "0" * 64},
    )
    base.update(kw)
    return ModelManifest(**base)


def test_severity_puts_threshold_at_half_and_clips() -> None:
    cal = calibration()
    assert cal.severity(120.0) == pytest.approx(0.5)
    assert cal.severity(220.0) == pytest.approx(1.0)
    assert cal.severity(10_000.0) == 1.0
    assert cal.severity(-5.0) == 0.0
    assert 0.5 < cal.severity(150.0) < 1.0


def test_manifest_json_round_trip() -> None:
    m = manifest()
    assert ModelManifest.model_validate_json(m.model_dump_json()) == m


@pytest.mark.parametrize("bad", [{"name": "../etc"}, {"version": ""}, {"kind": "audio"}, {"opset": 0}])
def test_manifest_rejects_bad_fields(bad: dict) -> None:
    with pytest.raises(ValidationError):
        manifest(**bad)


def test_ratio_severity_is_half_at_the_threshold_and_grows_toward_one():
    from schemas.manifest import ratio_severity

    assert ratio_severity(2.0, 2.0) == 0.5
    assert ratio_severity(4.0, 2.0) == 0.75
    assert 0.99 < ratio_severity(1000.0, 2.0) < 1.0
    assert ratio_severity(0.0, 2.0) == 0.5


def test_severity_rule_defaults_from_the_kind_for_manifests_written_before_it() -> None:
    assert manifest().severity == "calibration-span"
    assert manifest(kind="metric").severity == "threshold-ratio"
    assert manifest(kind="metric", severity="calibration-span").severity == "calibration-span"
    old = manifest().model_dump(mode="json")
    del old["severity"]
    assert ModelManifest.model_validate(old).severity == "calibration-span"
    with pytest.raises(ValidationError):
        manifest(severity="loudness")


# --- Full validation: every rule below fails its test if it is removed. ---


def manifest_json(**changes: object) -> str:
    """A manifest as training writes it, with `changes` to its top-level fields; NaN and Infinity
    are written as the JSON literals Python's json writes (and pydantic's JSON parser reads)."""
    data = json.loads(manifest().model_dump_json())
    data.update(changes)
    return json.dumps(data)


def refusal(text: str) -> str:
    with pytest.raises(ValidationError) as caught:
        ModelManifest.model_validate_json(text)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (math.nan, "field `threshold`: must be finite (got nan)"),
        (math.inf, "field `threshold`: must be finite (got inf)"),
        (-math.inf, "field `threshold`: must be finite (got -inf)"),
        (-1.0, "field `threshold`: must not be negative (got -1.0)"),
    ],
)
def test_threshold_must_be_finite_and_not_negative(threshold: float, message: str) -> None:
    assert refusal(manifest_json(threshold=threshold)).startswith(message)
    assert manifest(threshold=0.0).threshold == 0.0  # a score can be 0 (a perfect reconstruction)


def test_calibration_numbers_must_be_finite() -> None:
    with pytest.raises(ValidationError, match="must be finite"):
        calibration(score_max=math.inf)
    with pytest.raises(ValidationError, match="must not be negative"):
        calibration(threshold=-0.5)
    cal = json.loads(calibration().model_dump_json())
    text = manifest_json(calibration={**cal, "percentiles": {"p99": math.nan}})
    assert refusal(text) == "field `calibration.percentiles.p99`: must be finite (got nan)"


@pytest.mark.parametrize("name", ["../model.onnx", "sub/../../x", "/etc/passwd", "C:/model.onnx", "a\\b", ""])
def test_listed_files_must_be_relative_paths_inside_the_bundle(name: str) -> None:
    message = refusal(manifest_json(files={"model.onnx": "0" * 64, name: "0" * 64}))
    assert message.startswith("field `files`: ") and "not a relative path inside the bundle folder" in message
    assert manifest(files={"model.onnx": "0" * 64, "figures/roc.png": "1" * 64}).files["figures/roc.png"]


def test_a_listed_hash_must_be_a_sha256() -> None:
    assert refusal(manifest_json(files={"model.onnx": "abc"})).startswith("field `files['model.onnx']`: ")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"opset": 0}, "field `opset`: Input should be greater than 0 (got 0)"),
        ({"kind": "audio"}, "field `kind`: Input should be 'image' or 'metric' (got 'audio')"),
        ({"input": {"name": "images", "shape": [28, -1]}}, "field `input.shape[1]`: "),
        ({"name": None}, "field `name`: "),
    ],
)
def test_a_bad_field_is_named_in_one_line(changes: dict, message: str) -> None:
    text = refusal(manifest_json(**changes))
    assert text.startswith(message) and "\n" not in text


def test_several_problems_give_the_first_and_a_count() -> None:
    assert refusal("{}") == "field `name`: Field required (and 11 more problems)"
    assert refusal("{").startswith("Invalid JSON")


def write_bundle_manifest(folder: Path, m: ModelManifest | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest_file(folder, m or manifest())
    return folder / MANIFEST_FILE


def test_the_checksum_file_is_what_sha256sum_checks(tmp_path: Path) -> None:
    m = manifest()
    path = write_bundle_manifest(tmp_path / "mnist-vae" / "1", m)
    line = (path.parent / MANIFEST_CHECKSUM_FILE).read_text()
    assert line == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  manifest.json\n"
    assert load_manifest(path.parent) == m


def test_one_flipped_byte_in_the_manifest_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_bundle_manifest(tmp_path / "mnist-vae" / "1")
    data = bytearray(path.read_bytes())
    data[data.index(b"120.0")] ^= 0x02  # threshold 120.0 -> 320.0: still a valid manifest
    path.write_bytes(bytes(data))
    ModelManifest.model_validate_json(bytes(data))
    with pytest.raises(
        ManifestError, match=rf"^{re.escape(str(path))}: sha256 does not match manifest\.sha256"
    ):
        load_manifest(path.parent)
    (path.parent / MANIFEST_CHECKSUM_FILE).write_text("not a hash\n")
    with pytest.raises(ManifestError, match="not a checksum line"):
        load_manifest(path.parent)


def test_a_manifest_without_a_checksum_loads_with_a_warning(tmp_path: Path, caplog) -> None:
    path = write_bundle_manifest(tmp_path / "mnist-vae" / "1")
    (path.parent / MANIFEST_CHECKSUM_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="schemas.manifest"):
        assert load_manifest(path.parent).name == "mnist-vae"
    assert f"{path}: no manifest.sha256 beside it; the manifest is unchecked" in caplog.text


def test_an_invalid_manifest_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    path = write_bundle_manifest(tmp_path / "mnist-vae" / "3")
    path.write_text(manifest_json(threshold=math.nan))
    (path.parent / MANIFEST_CHECKSUM_FILE).write_text(manifest_checksum_line(path.read_bytes()))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path.parent)
    assert str(caught.value) == f"{path}: not a valid manifest: field `threshold`: must be finite (got nan)"


def test_a_listed_file_that_is_a_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mnist-vae" / "1"
    folder.mkdir(parents=True)
    (tmp_path / "elsewhere.onnx").write_bytes(b"x")
    (folder / "model.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(
        ManifestError, match=r"model\.onnx: listed in the manifest but leads outside the bundle"
    ):
        bundle_path(folder, "model.onnx")
    (folder / "inside.onnx").write_bytes(b"x")
    (folder / "link.onnx").symlink_to("inside.onnx")
    assert bundle_path(folder, "link.onnx") == folder / "link.onnx"
