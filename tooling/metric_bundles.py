"""A small hand-built metric bundle for the tests of the worker's window mechanics and for prom-check
(not for model quality).

Its graph scores a window by how far the last point lies from the mean of the others:
score = (x[-1] - mean(x[:-1]))^2 on scaled values (its detector's vae part). Real, exported
ONNX; quick to build; its scores are easy to predict. The trained
KPI bundle (training.kpi) is what the quality tests use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from schemas import ModelManifest
from schemas.detect import DetectorParams
from schemas.manifest import (
    Calibration,
    MetricPreprocessing,
    ScoreSpec,
    SeriesStats,
    TensorSpec,
    sha256_file,
    write_manifest_file,
)


def last_point_graph(window: int) -> onnx.ModelProto:
    def const(name: str, values: list[int]) -> onnx.NodeProto:
        return helper.make_node(
            "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
        )

    nodes = [
        const("start_head", [0]),
        const("end_head", [window - 1]),
        const("start_last", [window - 1]),
        const("end_last", [window]),
        const("axis", [1]),
        helper.make_node("Slice", ["window", "start_head", "end_head", "axis"], ["head"]),
        helper.make_node("Slice", ["window", "start_last", "end_last", "axis"], ["last"]),
        helper.make_node("ReduceMean", ["head", "axis"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["last", "mean"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("Squeeze", ["sq", "axis"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "last_point_distance",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", window])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def write_last_point_bundle(
    folder: Path,
    window: int = 8,
    detector: DetectorParams | None = None,
    series: dict[str, SeriesStats] | None = None,
    interval_s: float = 60.0,
) -> ModelManifest:
    """A bundle at `folder` (= <repository>/<name>/<version>) whose scores are easy to predict; its
    detector (schemas/detect.py) alerts from a series' first scored point unless told otherwise."""
    detector = detector or DetectorParams(warmup=0)
    threshold = detector.threshold
    folder.mkdir(parents=True)
    onnx.save(last_point_graph(window), folder / "model.onnx")
    manifest = ModelManifest(
        name=folder.parent.name,
        version=folder.name,
        kind="metric",
        created_at=datetime.now(UTC),
        input=TensorSpec(name="window", shape=[window]),
        outputs={"score": TensorSpec(name="score", shape=[])},
        opset=18,
        preprocessing=MetricPreprocessing(
            window=window, interval_s=interval_s, reset_gap=window, series=series or {}, detector=detector
        ),
        score=ScoreSpec(function="last_point_sq", description="(last - mean of the rest)^2, normalised"),
        threshold=threshold,
        calibration=Calibration(
            method="adaptive",
            threshold=threshold,
            score_min=0.0,
            score_max=4 * threshold,
            n_scores=1,
            data="hand-set for tests",
        ),
        files={"model.onnx": sha256_file(folder / "model.onnx")},
    )
    write_manifest_file(folder, manifest)
    return manifest
