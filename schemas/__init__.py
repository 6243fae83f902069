"""Wire schemas: every record, alert, dead letter and manifest that crosses a boundary."""

from schemas.dead_letter import DeadLetter, Reason
from schemas.decode import DEFAULT_MAX_BYTES, Rejection, decode
from schemas.encode import image_message, metric_message
from schemas.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    Calibration,
    ImagePreprocessing,
    MetricPreprocessing,
    ModelManifest,
    ScoreSpec,
    SeriesStats,
    TensorSpec,
)
from schemas.outputs import AnomalyAlert, ScoreMessage, SourcePosition
from schemas.records import ImageRecord, MetricPoint, Record, series_key

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "AnomalyAlert",
    "Calibration",
    "DeadLetter",
    "ImagePreprocessing",
    "ImageRecord",
    "MetricPoint",
    "MetricPreprocessing",
    "ModelManifest",
    "Reason",
    "Record",
    "Rejection",
    "ScoreMessage",
    "ScoreSpec",
    "SeriesStats",
    "SourcePosition",
    "TensorSpec",
    "decode",
    "image_message",
    "metric_message",
    "series_key",
]
