"""The front door: Kafka message bytes -> a record, or the reason it is not one. Never raises."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from schemas.dead_letter import Reason
from schemas.records import ImageRecord, MetricPoint, Record

DEFAULT_MAX_BYTES = 1_048_576  # Kafka's default max.message.bytes

_RECORD = TypeAdapter(Record)

# Error types raised by pydantic (and by our own validators) -> dead-letter reason.
_REASON_BY_ERROR_TYPE = {
    "union_tag_not_found": Reason.UNKNOWN_KIND,
    "union_tag_invalid": Reason.UNKNOWN_KIND,
    "bad_base64": Reason.BAD_BASE64,
    "shape_mismatch": Reason.SHAPE_MISMATCH,
    "non_finite": Reason.NON_FINITE,
    "finite_number": Reason.NON_FINITE,
    "out_of_range": Reason.OUT_OF_RANGE,
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a record: a reason code and a message that says what to fix."""

    reason: Reason
    error: str


def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageRecord | MetricPoint | Rejection:
    """Turn a message value into a record, or a `Rejection` naming one `Reason`.

    The fast path parses and validates in one go (pydantic's JSON parser); only a
    message that fails takes the slow path, which works out the precise reason.
    """
    if raw is None:
        return Rejection(Reason.INVALID_JSON, "message has no value (a tombstone); send a JSON object")
    if len(raw) > max_bytes:
        return Rejection(Reason.TOO_LARGE, f"message is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        return _RECORD.validate_json(raw)
    except ValidationError:
        return _diagnose(raw)
    except Exception as exc:  # the decoder must never raise, whatever a validator does
        return Rejection(Reason.SCHEMA, f"could not validate the record: {exc}")


def _diagnose(raw: bytes) -> Rejection:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Reason.INVALID_JSON, f"message is not UTF-8 text: {exc}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Rejection(Reason.INVALID_JSON, f"message is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection(Reason.NOT_AN_OBJECT, f"message is a JSON {type(obj).__name__}, not an object")
    try:
        _RECORD.validate_python(obj)
    except ValidationError as exc:
        return _rejection_from(exc)
    except Exception as exc:
        return Rejection(Reason.SCHEMA, f"could not validate the record: {exc}")
    # Valid as a Python object but not as JSON text: e.g. a duplicate key or a
    # lone surrogate that the strict JSON parser refused.
    return Rejection(Reason.INVALID_JSON, "message is not valid JSON for the strict parser")


def _rejection_from(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False)
    for err in errors:
        reason = _REASON_BY_ERROR_TYPE.get(err["type"])
        if reason is not None:
            return Rejection(reason, _describe(err, reason))
    return Rejection(Reason.SCHEMA, "; ".join(_describe(e, Reason.SCHEMA) for e in errors[:5]))


def _describe(err: dict, reason: Reason) -> str:
    loc = ".".join(str(p) for p in err["loc"][1:])  # drop the union tag
    if reason is Reason.UNKNOWN_KIND:
        return "`kind` must be 'image' or 'metric'" + (
            "" if err["type"] == "union_tag_not_found" else f", not {err['input'].get('kind')!r}"
        )
    return f"{loc}: {err['msg']}" if loc else err["msg"]
