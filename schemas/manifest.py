"""The model bundle's manifest: the contract between `training` (writes it) and `worker` (trusts it).

A bundle is a folder `<repository>/<name>/<version>/` holding `model.onnx`, optional
extra ONNX files and figures, and `manifest.json`, which validates as `ModelManifest`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from schemas.detect import DetectorParams

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


def sha256_file(path: Path) -> str:
    """The hash the manifest records for each bundle file (and the worker checks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TensorSpec(BaseModel):
    """A named graph input or output; `shape` excludes the dynamic batch axis."""

    model_config = ConfigDict(frozen=True)

    name: str
    shape: list[PositiveInt]
    dtype: Literal["float32"] = "float32"


class ImagePreprocessing(BaseModel):
    """How an image record becomes the model input: pixels to float32 in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    type: Literal["image"] = "image"
    uint8_scale: float = Field(1.0 / 255.0, description="uint8 pixels are multiplied by this")
    record_shape: list[PositiveInt] = Field(..., description="Shape a record must have, e.g. [28, 28]")


class SeriesStats(BaseModel):
    """What training learned about one series: its grid."""

    model_config = ConfigDict(frozen=True)

    interval_s: float = Field(..., gt=0, description="Sampling interval of the series, seconds")


class MetricPreprocessing(BaseModel):
    """How metric points become model input and alerts: schemas/timeseries.py (the grid) and
    schemas/detect.py (scaling, parts, adaptive thresholds), which the worker and training share."""

    model_config = ConfigDict(frozen=True)

    type: Literal["metric"] = "metric"
    window: PositiveInt = Field(..., description="W: points per window; the graph input is [batch, W]")
    interval_s: float = Field(..., gt=0, description="Grid interval for series training did not see")
    fill: Literal["linear"] = Field("linear", description="Missing grid points: linear between neighbours")
    reset_gap: PositiveInt = Field(
        ..., description="A gap of this many missing points or more restarts the series' window"
    )
    clip: float = Field(20.0, gt=0, description="Scaled values are clipped to [-clip, clip]")
    normalisation: Literal["window"] = Field(
        "window",
        description="Each window is scaled by its own past: (value - median) / (IQR / 1.349) of its "
        "first W - 1 points, so the scaling follows the series",
    )
    series: dict[str, SeriesStats] = Field(
        default_factory=dict, description="Per-series grid interval by series key (series + sorted labels)"
    )
    detector: DetectorParams = Field(
        default_factory=DetectorParams, description="Parts, adaptive thresholds, warm-up: schemas/detect.py"
    )

    @property
    def record_shape(self) -> list[int]:
        return [self.window]


class ScoreSpec(BaseModel):
    """What the graph's score output means."""

    model_config = ConfigDict(frozen=True)

    function: str = Field(..., description="e.g. 'bce_sum': summed binary cross-entropy over pixels")
    description: str = Field("", description="What the score means, in words")
    latent: Literal["mean"] = Field("mean", description="Scored from the latent mean: deterministic")
    higher_is_anomalous: Literal[True] = True


class Calibration(BaseModel):
    """How the threshold was chosen, and how a score maps to a severity in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    method: Literal["percentile", "mean-std", "adaptive"] = Field(
        ..., description="adaptive: metric models, thresholds that follow each series (schemas/detect.py)"
    )
    percentile: float | None = Field(None, gt=0, lt=100, description="method=percentile")
    k: float | None = Field(None, description="method=mean-std: threshold = mean + k*std")
    threshold: float
    score_min: float = Field(..., description="Lowest calibration score (severity normalisation)")
    score_max: float = Field(..., description="Highest calibration score (severity normalisation)")
    percentiles: dict[str, float] = Field(
        default_factory=dict, description="Calibration score percentiles, e.g. {'p50': ..., 'p99': ...}"
    )
    n_scores: PositiveInt = Field(..., description="How many scores the calibration saw")
    data: str = Field(..., description="Which data the calibration scores came from")

    def severity(self, score: float) -> float:
        """Min-max normalised score in [0, 1], with the threshold at 0.5 (anomalib's convention)."""
        span = max(self.score_max - self.score_min, 1e-12)
        return float(min(1.0, max(0.0, (score - self.threshold) / span + 0.5)))


def ratio_severity(score: float, threshold: float) -> float:
    """Severity of a metric alert: 1 - threshold / (2 * score), i.e. 0.5 at the threshold, 0.75 at
    twice it, toward 1 beyond. Scale-free, so it means the same for every series whatever its own
    threshold (a min-max span over all series would squeeze every metric alert to about 0.5)."""
    if score <= 0 or threshold <= 0:
        return 0.5
    return float(min(1.0, max(0.0, 1.0 - threshold / (2.0 * score))))


SeverityRule = Literal["calibration-span", "threshold-ratio"]
# Manifests written before `severity` existed: the rule the worker applied to their kind then.
SEVERITY_OF_KIND: dict[str, SeverityRule] = {"image": "calibration-span", "metric": "threshold-ratio"}


class ModelManifest(BaseModel):
    """manifest.json of a model bundle."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    schema_version: Literal[1] = 1
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Literal["image", "metric"]
    created_at: datetime
    input: TensorSpec
    outputs: dict[str, TensorSpec] = Field(
        ..., description="Graph outputs by role: at least 'score' (shape [] per record)"
    )
    opset: PositiveInt
    preprocessing: ImagePreprocessing | MetricPreprocessing = Field(..., discriminator="type")
    score: ScoreSpec
    threshold: float
    calibration: Calibration
    severity: SeverityRule | None = Field(
        None,  # never None once validated: filled from `kind` when absent (_severity_of_kind)
        description="How an alert's score maps to a severity in [0, 1], 0.5 at the threshold: "
        "calibration-span (Calibration.severity: min-max over the calibration scores) or threshold-ratio "
        "(ratio_severity: 1 - threshold / (2 * score), for per-series thresholds). Absent or null: "
        "calibration-span for images, threshold-ratio for metrics",
    )
    training: dict[str, object] = Field(default_factory=dict, description="Data, arch, hyper-parameters")
    metrics: dict[str, float] = Field(default_factory=dict, description="Evaluation figures")
    files: dict[str, str] = Field(..., description="sha256 of every file in the bundle but this one")
    package_versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _severity_of_kind(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("severity") is None and data.get("kind") in SEVERITY_OF_KIND:
            return {**data, "severity": SEVERITY_OF_KIND[data["kind"]]}
        return data

    @property
    def model_file(self) -> str:
        return MODEL_FILE
