"""ModelManifest and its calibration: the contract between training and worker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import Calibration, ImagePreprocessing, ModelManifest, ScoreSpec, TensorSpec


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
