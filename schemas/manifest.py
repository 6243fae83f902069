"""The model bundle's manifest: the contract between `training` (writes it) and `worker` (trusts it).

A bundle is a folder `<repository>/<name>/<version>/` holding `model.onnx`, optional
extra ONNX files and figures, `manifest.json`, which validates as `ModelManifest`, and
`manifest.sha256`, the manifest's own hash (the manifest holds every other file's).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.detect import DetectorParams
from schemas.records import KINDS, Kind

MANIFEST_FILE = "manifest.json"
MANIFEST_CHECKSUM_FILE = "manifest.sha256"
MODEL_FILE = "model.onnx"

log = logging.getLogger(__name__)


class ManifestError(ValueError):
    """A manifest (or a file it lists) that may not be used; the message is one line naming the file."""


def sha256_file(path: Path) -> str:
    """The hash the manifest records for each bundle file (and the worker checks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finite(value: float) -> float:
    # JSON as pydantic parses it accepts NaN and Infinity; either would make every comparison false.
    if not math.isfinite(value):
        raise PydanticCustomError("finite", "must be finite (got {value})", {"value": value})
    return value


def _score_threshold(value: float) -> float:
    _finite(value)
    if value < 0:
        raise PydanticCustomError(
            "threshold_sign",
            "must not be negative (got {value}): scores are reconstruction errors, never below 0, so a "
            "negative threshold would flag every record",
            {"value": value},
        )
    return value


Finite = Annotated[float, AfterValidator(_finite)]
# Every score function (ScoreSpec.function: summed cross-entropy, squared error) is >= 0 and higher
# is anomalous, and so are the metric detector's surprises: a threshold on them is >= 0.
ScoreThreshold = Annotated[float, AfterValidator(_score_threshold)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _inside_bundle(name: str) -> bool:
    """Whether a listed file name is a plain relative path (no absolute path, no `..`) in the folder."""
    if not name or "\\" in name or PureWindowsPath(name).drive:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


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
    uint8_scale: Finite = Field(1.0 / 255.0, gt=0, description="uint8 pixels are multiplied by this")
    record_shape: list[PositiveInt] = Field(..., description="Shape a record must have, e.g. [28, 28]")


class SeriesStats(BaseModel):
    """What training learned about one series: its grid."""

    model_config = ConfigDict(frozen=True)

    interval_s: Finite = Field(..., gt=0, description="Sampling interval of the series, seconds")


class MetricPreprocessing(BaseModel):
    """How metric points become model input and alerts: schemas/timeseries.py (the grid) and
    schemas/detect/ (scaling, parts, adaptive thresholds), which the worker and training share."""

    model_config = ConfigDict(frozen=True)

    type: Literal["metric"] = "metric"
    window: PositiveInt = Field(..., description="W: points per window; the graph input is [batch, W]")
    interval_s: Finite = Field(..., gt=0, description="Grid interval for series training did not see")
    fill: Literal["linear"] = Field("linear", description="Missing grid points: linear between neighbours")
    reset_gap: PositiveInt = Field(
        ..., description="A gap of this many missing points or more restarts the series' window"
    )
    clip: Finite = Field(20.0, gt=0, description="Scaled values are clipped to [-clip, clip]")
    normalisation: Literal["window"] = Field(
        "window",
        description="Each window is scaled by its own past: (value - median) / (IQR / 1.349) of its "
        "first W - 1 points, so the scaling follows the series",
    )
    series: dict[str, SeriesStats] = Field(
        default_factory=dict, description="Per-series grid interval by series key (series + sorted labels)"
    )
    detector: DetectorParams = Field(
        default_factory=DetectorParams, description="Parts, adaptive thresholds, warm-up: schemas/detect/"
    )
    state_file: str | None = Field(
        None,
        description="A file of the bundle with the detector state of each series training saw "
        "(schemas/detect/state.py, StateFile): those series start warm in the worker",
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


# How training may choose an image model's threshold (training/core/calibrate.py; --calibration).
CalibrationMethod = Literal["percentile", "mean-std"]


class Calibration(BaseModel):
    """How the threshold was chosen, and how a score maps to a severity in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    method: CalibrationMethod | Literal["adaptive"] = Field(
        ..., description="adaptive: metric models, thresholds that follow each series (schemas/detect/)"
    )
    percentile: float | None = Field(None, gt=0, lt=100, description="method=percentile")
    k: Finite | None = Field(None, description="method=mean-std: threshold = mean + k*std")
    threshold: ScoreThreshold
    score_min: Finite = Field(..., description="Lowest calibration score (severity normalisation)")
    score_max: Finite = Field(..., description="Highest calibration score (severity normalisation)")
    percentiles: dict[str, Finite] = Field(
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
assert set(SEVERITY_OF_KIND) == set(KINDS), "a severity rule for each record kind"


class ModelManifest(BaseModel):
    """manifest.json of a model bundle."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    schema_version: Literal[1] = 1
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Kind
    created_at: datetime
    input: TensorSpec
    outputs: dict[str, TensorSpec] = Field(
        ..., description="Graph outputs by role: at least 'score' (shape [] per record)"
    )
    opset: PositiveInt
    preprocessing: ImagePreprocessing | MetricPreprocessing = Field(..., discriminator="type")
    score: ScoreSpec
    threshold: ScoreThreshold
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
    files: dict[str, Sha256] = Field(
        ...,
        description="sha256 of every file in the bundle but the manifest and its checksum, by path "
        "relative to the bundle folder",
    )
    package_versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _severity_of_kind(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("severity") is None and data.get("kind") in SEVERITY_OF_KIND:
            return {**data, "severity": SEVERITY_OF_KIND[data["kind"]]}
        return data

    @field_validator("files")
    @classmethod
    def _files_inside_the_bundle(cls, files: dict[str, str]) -> dict[str, str]:
        # The worker opens what is listed here: a path out of the folder would load or hash another file.
        for name in files:
            if not _inside_bundle(name):
                raise PydanticCustomError(
                    "outside_bundle",
                    "'{name}' is not a relative path inside the bundle folder (no absolute path, no '..')",
                    {"name": name},
                )
        return files

    @property
    def model_file(self) -> str:
        return MODEL_FILE


def _loc_part(part: int | str) -> str:
    """One step of an error's location: `.field`, `[0]`, or `['model.onnx']` for a key with dots in it."""
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if re.fullmatch(r"\w+", part) else f"[{part!r}]"


def describe_validation_error(exc: ValidationError) -> str:
    """One line for a failed validation: the first problem, the field it is in (`a.b[0]`) and the value
    given, and how many more there are. A user fixes one line at a time; a dump of every error is noise."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = "".join(_loc_part(p) for p in first["loc"]).lstrip(".")
    text = first["msg"]
    given = first.get("input")
    # Custom errors quote the value themselves; a missing field's input is its whole parent object.
    if where and "got" not in text and isinstance(given, str | int | float | bool) and len(repr(given)) <= 80:
        text += f" (got {given!r})"
    if where:
        text = f"field `{where}`: {text}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def manifest_checksum_line(manifest_bytes: bytes) -> str:
    """The content of manifest.sha256: `<sha256>  manifest.json`, the form `sha256sum -c` checks."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_FILE}\n"


def write_manifest_file(folder: Path, manifest: ModelManifest) -> None:
    """Write manifest.json and, after it, manifest.sha256 (its hash) into the bundle folder."""
    data = (manifest.model_dump_json(indent=2) + "\n").encode()
    (folder / MANIFEST_FILE).write_bytes(data)
    (folder / MANIFEST_CHECKSUM_FILE).write_text(manifest_checksum_line(data))


def check_manifest_checksum(folder: Path, manifest_bytes: bytes) -> bool:
    """Whether manifest.sha256 vouches for these manifest bytes: True if it matches, False if the bundle
    has none (bundles written before it); ManifestError if it is unreadable or does not match."""
    path = folder / MANIFEST_CHECKSUM_FILE
    if not path.exists():
        return False
    try:
        words = path.read_text().split()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read: {exc}") from None
    if not words or not re.fullmatch(r"[0-9a-f]{64}", words[0]):
        raise ManifestError(f"{path}: not a checksum line '<sha256>  {MANIFEST_FILE}'")
    if words[0] != hashlib.sha256(manifest_bytes).hexdigest():
        raise ManifestError(
            f"{folder / MANIFEST_FILE}: sha256 does not match {MANIFEST_CHECKSUM_FILE}; the manifest was "
            "changed or corrupted after training wrote it: re-export the bundle (a new version of a "
            "bundle: python -m training publish <bundle folder>, which re-signs the copy's manifest)"
        )
    return True


def load_manifest(folder: Path) -> ModelManifest:
    """The validated manifest of the bundle at `folder`, checked against manifest.sha256 when there is
    one (a warning says so when there is none). Raises ManifestError, one line naming file and field."""
    path = folder / MANIFEST_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not check_manifest_checksum(folder, data):
        log.warning("%s: no %s beside it; the manifest is unchecked", path, MANIFEST_CHECKSUM_FILE)
    try:
        return ModelManifest.model_validate_json(data)
    except ValidationError as exc:
        raise ManifestError(f"{path}: not a valid manifest: {describe_validation_error(exc)}") from None


def bundle_path(folder: Path, name: str) -> Path:
    """`folder / name` for a file the manifest lists, refused (ManifestError) if it resolves outside the
    folder: the schema refuses absolute paths and '..', this also catches a symlink to elsewhere."""
    path = folder / name
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ManifestError(
            f"{path}: listed in the manifest but leads outside the bundle folder, to {target}"
        )
    return path
