"""Build wire-format messages (for producers, the demo, benchmarks and tests).

Every message is checked with the worker's own decoder before it is returned: input the
worker would dead-letter (a NaN value, a label that is not a string, float32 pixels outside
[0, 1], a `ts` that is not a timestamp, ...) raises `ValueError` here instead, saying what to fix.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from datetime import datetime

import numpy as np

from schemas.decode import Rejection, decode
from schemas.records import ImageRecord, MetricPoint


def image_message(
    pixels: np.ndarray,
    *,
    id: str | None = None,
    ts: datetime | str | None = None,
    source: str | None = None,
    model: str | None = None,
) -> bytes:
    """JSON bytes of an image record; `pixels` is uint8 or float32 in [0, 1], any shape."""
    arr = np.ascontiguousarray(pixels)
    if arr.dtype == np.uint8:
        dtype = "uint8"
    elif arr.dtype == np.float32:
        dtype = "float32"
        arr = arr.astype("<f4", copy=False)
    else:
        raise ValueError(f"image_message: pixels must be uint8 or float32, not {arr.dtype}")
    msg: dict[str, object] = {"kind": "image"}
    _put(msg, id=id, ts=ts, source=source, model=model)
    msg.update(shape=list(arr.shape), dtype=dtype, data=base64.b64encode(arr.tobytes()).decode())
    return _checked("image_message", msg)[0]


def metric_message(
    series: str,
    value: float,
    *,
    labels: dict[str, str] | None = None,
    ts: datetime | str | None = None,
    model: str | None = None,
) -> tuple[bytes, bytes]:
    """(Kafka key, JSON value) of a metric point; the key keeps a series on one partition."""
    labels = labels or {}
    msg: dict[str, object] = {"kind": "metric", "series": series, "labels": labels}
    _put(msg, ts=ts, model=model)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric_message: value must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"metric_message: value must be a finite number, not {value!r}")
    msg["value"] = number
    raw, point = _checked("metric_message", msg)
    assert isinstance(point, MetricPoint)
    return point.series_key.encode(), raw  # the key exactly as the worker computes it


def _put(msg: dict[str, object], **fields: object) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        msg[name] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _checked(helper: str, msg: dict[str, object]) -> tuple[bytes, ImageRecord | MetricPoint]:
    """The message as compact JSON and its record, once the decoder accepts it; else ValueError."""
    try:
        raw = json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):  # a value JSON cannot hold: NaN, a set, a numpy scalar
        raise ValueError(f"{helper}: {_unwritable(msg)}") from None
    # No size limit here: that is the consumer's setting (--max-message-bytes), not the format's.
    result = decode(raw, max_bytes=sys.maxsize)
    if isinstance(result, Rejection):
        raise ValueError(f"{helper}: the worker would reject this record ({result.reason}): {result.error}")
    return raw, result


_WANTED = {
    "labels": "labels must map str names to str values",
    "ts": "ts must be a datetime or an RFC 3339 str",
}


def _unwritable(msg: dict[str, object]) -> str:
    """Which field of `msg` JSON cannot hold, and why."""
    for name, value in msg.items():
        parts = [(f"{name}.{k}", {k: v}) for k, v in value.items()] if isinstance(value, dict) else []
        for where, part in [*parts, (name, value)]:
            try:
                json.dumps(part, allow_nan=False)
            except (TypeError, ValueError) as exc:
                return f"{where}: {exc}; {_WANTED.get(name, f'{name} must be a str')}"
    return "the record cannot be written as JSON"
