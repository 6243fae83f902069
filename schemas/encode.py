"""Build wire-format messages (for producers, the demo, benchmarks and tests)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import numpy as np

from schemas.records import series_key


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
        raise ValueError(f"pixels must be uint8 or float32, not {arr.dtype}")
    msg: dict[str, object] = {"kind": "image"}
    _put(msg, id=id, ts=ts, source=source, model=model)
    msg.update(shape=list(arr.shape), dtype=dtype, data=base64.b64encode(arr.tobytes()).decode())
    return json.dumps(msg, separators=(",", ":")).encode()


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
    msg["value"] = float(value)
    return series_key(series, labels).encode(), json.dumps(msg, separators=(",", ":")).encode()


def _put(msg: dict[str, object], **fields: object) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        msg[name] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
