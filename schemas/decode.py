"""The front door: Kafka message bytes -> a record, or the reason it is not one. Never raises."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from schemas.dead_letter import Reason
from schemas.records import KINDS, ImageRecord, MetricPoint, Record

DEFAULT_MAX_BYTES = 1_048_576  # Kafka's default max.message.bytes
_MAX_DEPTH = 200  # pydantic's JSON parser refuses deeper nesting
_JSON_WHITESPACE = " \t\r\n"

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
    "timestamp_range": Reason.BAD_TIMESTAMP,
    "misplaced_time": Reason.BAD_TIMESTAMP,
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a record: a reason code and a message that says what to fix."""

    reason: Reason
    error: str


PYTHON_FIRST_BYTES = 64 * 1024


def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageRecord | MetricPoint | Rejection:
    """Turn a message value into a record, or a `Rejection` naming one `Reason`.

    The fast path parses and validates in one go (pydantic's JSON parser); only a
    message that fails takes the slow path, which works out the precise reason.
    """
    if raw is None:
        return Rejection(Reason.INVALID_JSON, "message has no value (a tombstone); send a JSON object")
    if len(raw) > max_bytes:
        return Rejection(Reason.TOO_LARGE, f"message is {len(raw)} bytes, over the {max_bytes}-byte limit")
    checked_first = len(raw) > PYTHON_FIRST_BYTES
    if checked_first:
        # pydantic's JSON parser, when it refuses a message, turns all of it into Python objects for
        # its error (170 ms for a crafted 1 MB one, against 20 ms for json.loads): a large message is
        # checked with the Python parser first, and only one that passes goes on to the strict parser.
        rejected = _slow_reason(raw)
        if rejected is not None:
            return rejected
    try:
        return _RECORD.validate_json(raw)
    except ValidationError as exc:
        # passed the Python parser already: the strict one refused what json.loads lets through
        slow = None if checked_first else _slow_reason(raw)
        return slow or Rejection(Reason.INVALID_JSON, _strict_parser_error(exc))
    except Exception as exc:  # the decoder must never raise, whatever a validator does
        return Rejection(Reason.SCHEMA, f"could not validate the record: {exc}")


# JSON's own names for the types json.loads returns (bool before int: True is an int).
_JSON_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean (true/false)"),
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
)


def _json_type_name(obj: object) -> str:
    return next((name for t, name in _JSON_TYPE_NAMES if isinstance(obj, t)), type(obj).__name__)


def _slow_reason(raw: bytes) -> Rejection | None:
    """Why the message is refused, found step by step with the Python parser; None if it passes."""
    if raw.startswith(codecs.BOM_UTF8):
        return Rejection(
            Reason.INVALID_JSON,
            "message starts with a UTF-8 byte-order mark (EF BB BF); send JSON without a BOM",
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Rejection(
            Reason.INVALID_JSON,
            "message starts with a UTF-16 or UTF-32 byte-order mark; "
            "send JSON encoded as UTF-8, without a BOM",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(
            Reason.INVALID_JSON,
            f"message is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} is not valid "
            f"UTF-8 ({exc.reason}); send JSON encoded as UTF-8",
        )
    if not text.strip(_JSON_WHITESPACE):
        return Rejection(Reason.INVALID_JSON, "message is empty; send one JSON object")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(Reason.INVALID_JSON, _json_syntax_error(exc, text, raw))
    except RecursionError:
        return Rejection(Reason.INVALID_JSON, _too_deep())
    except ValueError as exc:  # an integer longer than Python's int parsing limit (4300 digits)
        if "digits" in str(exc):
            return Rejection(
                Reason.INVALID_JSON,
                "message is not valid JSON for this decoder: a number has too many digits (over 4300); "
                "send numbers as ordinary integers or floating-point values",
            )
        return Rejection(Reason.INVALID_JSON, f"message is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Rejection(
            Reason.NOT_AN_OBJECT,
            f"message is a JSON {_json_type_name(obj)}, not an object; send one JSON object such as "
            '{"kind": "metric", ...}',
        )
    try:
        _RECORD.validate_python(obj)
    except ValidationError as exc:
        return _rejection_from(exc)
    except Exception as exc:
        return Rejection(Reason.SCHEMA, f"could not validate the record: {exc}")
    # Valid as a Python object: if the strict parser refused the text, it refused something
    # json.loads lets through (see _strict_parser_error).
    return None


def _too_deep(where: str = "") -> str:
    return (
        f"message is not valid JSON for this decoder: arrays or objects are nested more than "
        f"{_MAX_DEPTH} levels deep{where}; flatten the message"
    )


# Python's json messages -> what a producer should do about them.
_JSON_HINTS = {
    "Extra data": "there is more after the first JSON value; send exactly one JSON object per message",
    "Invalid control character at": (
        "a string holds a raw control character (a line break, tab, ...); escape it as \\n, \\t or \\u00XX"
    ),
    "Invalid \\uXXXX escape": "a \\u escape must be followed by exactly 4 hex digits",
    "Unterminated string starting at": "a string starting here has no closing quote (cut short?)",
    "Expecting property name enclosed in double quotes": (
        "expected a key in double quotes (single quotes and trailing commas are not JSON)"
    ),
}


def _json_syntax_error(exc: json.JSONDecodeError, text: str, raw: bytes) -> str:
    where = f"line {exc.lineno} column {exc.colno}"
    if b"\x00" in raw:
        return (
            f"message is not valid JSON: it holds NUL bytes (first at {where}); is it UTF-16 or UTF-32? "
            "send JSON encoded as UTF-8"
        )
    if exc.pos >= len(text.rstrip(_JSON_WHITESPACE)):
        return f"message is not valid JSON: it ends at {where} before the JSON does (cut short?)"
    return f"message is not valid JSON at {where}: {_JSON_HINTS.get(exc.msg, exc.msg)}"


def _strict_parser_error(exc: ValidationError) -> str:
    """Name what pydantic's parser refused when json.loads accepted the message."""
    detail = next((e["msg"] for e in exc.errors(include_url=False) if e["type"] == "json_invalid"), "")
    detail = detail.removeprefix("Invalid JSON: ")
    problem, _, where = detail.partition(" at line ")
    where = f" (at line {where})" if where else ""
    if "recursion limit" in problem:
        return _too_deep(where)
    if "surrogate" in problem or "escape" in problem:
        return (
            f"message is not valid JSON for this decoder: a \\u escape{where} is a lone surrogate "
            "(\\ud800-\\udfff without its pair) or otherwise invalid; send the character itself in UTF-8 "
            "or a complete surrogate pair"
        )
    if "number out of range" in problem:
        return (
            f"message is not valid JSON for this decoder: a number{where} is out of range "
            "(too many digits or too large an exponent)"
        )
    if problem:
        return f"message is not valid JSON for this decoder: {problem}{where}"
    return "message is not valid JSON for this decoder's strict parser"


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
        return f"`kind` must be {' or '.join(repr(k) for k in KINDS)}" + (
            "" if err["type"] == "union_tag_not_found" else f", not {err['input'].get('kind')!r}"
        )
    msg = err["msg"]
    if err["type"] == "string_unicode":
        msg = (
            "holds a lone surrogate (a \\ud800-\\udfff escape without its pair); send the character "
            "itself in UTF-8 or a complete surrogate pair"
        )
    return f"{loc}: {msg}" if loc else msg
