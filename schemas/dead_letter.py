"""Dead letters: records the worker could not score, with the original bytes and why."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.outputs import SourcePosition


class Reason(StrEnum):
    """Why a record was dead-lettered. A closed set: dashboards and alerts key on it."""

    TOO_LARGE = "too_large"  # message bigger than the size limit
    INVALID_JSON = "invalid_json"  # not UTF-8, or not parseable JSON
    NOT_AN_OBJECT = "not_an_object"  # JSON, but not an object (a list, a number, ...)
    UNKNOWN_KIND = "unknown_kind"  # `kind` missing, or not one of image/metric
    SCHEMA = "schema"  # a required field missing, or a field of the wrong type
    BAD_BASE64 = "bad_base64"  # image `data` is not valid base64
    SHAPE_MISMATCH = "shape_mismatch"  # pixel bytes do not match shape x dtype, or the model's shape
    NON_FINITE = "non_finite"  # NaN or infinity in a value or a pixel
    OUT_OF_RANGE = "out_of_range"  # float32 pixels outside [0, 1]
    UNKNOWN_MODEL = "unknown_model"  # the record names a model the worker does not serve
    SCORING_FAILED = "scoring_failed"  # the model raised on this record's batch


class DeadLetter(BaseModel):
    """Published to the dead-letter topic; Kafka key = the original message's key."""

    reason: Reason
    error: str = Field(..., description="Human-readable explanation, with what to fix.")
    original: str = Field(..., description="base64 of the original message value, byte for byte.")
    original_size: int = Field(..., ge=0, description="Size of the original value in bytes.")
    original_truncated: bool = Field(
        False, description="True if `original` holds only the first bytes (a value too large to re-publish)."
    )
    original_key: str | None = Field(None, description="base64 of the original message key.")
    source: SourcePosition
    dead_lettered_at: datetime
