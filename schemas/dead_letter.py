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
    BAD_TIMESTAMP = "bad_timestamp"  # `ts` outside 1970-01-01 .. 2200-01-01 (UTC)
    OUTPUT_FAILED = (
        "output_failed"  # its alert or score message could not be built, or is over the size limit
    )
    UNREADABLE = "unreadable"  # the Kafka client could not parse the record (e.g. a header key not UTF-8)


class DeadLetter(BaseModel):
    """Published to the dead-letter topic; Kafka key = the original message's key (a key over 4 KiB:
    `sha256:` and its hex digest, so one key still goes to one partition)."""

    reason: Reason
    error: str = Field(..., description="Human-readable explanation, with what to fix.")
    original: str = Field(..., description="base64 of the original message value, byte for byte.")
    original_size: int = Field(..., ge=0, description="Size of the original value in bytes.")
    original_truncated: bool = Field(
        False, description="True if `original` holds only the first bytes (a value too large to re-publish)."
    )
    original_key: str | None = Field(
        None, description="base64 of the original message key (its first bytes if `original_key_truncated`)."
    )
    original_key_truncated: bool = Field(
        False,
        description="True if `original_key` holds only the first bytes of a key too large to re-publish.",
    )
    source: SourcePosition
    dead_lettered_at: datetime
