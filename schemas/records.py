"""Input records: what producers put on the input topics (one JSON object per message)."""

from __future__ import annotations

import base64
import binascii
import math
import string
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

import numpy as np
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

# Bytes per element of each supported pixel dtype, and how to bring it to [0, 1].
PIXEL_DTYPES: dict[str, tuple[np.dtype, float]] = {
    "uint8": (np.dtype(np.uint8), 1.0 / 255.0),
    "float32": (np.dtype("<f4"), 1.0),
}

Dim = Annotated[int, Field(strict=True, ge=1, le=65536)]


EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(2200, 1, 1, tzinfo=UTC)


def in_ts_range(seconds: float) -> bool:
    """Whether a Unix time (s) lies in the range a record's `ts` may take."""
    return EARLIEST_TS.timestamp() <= seconds < LATEST_TS.timestamp()


def _as_utc(ts: datetime) -> datetime:
    """A zone-less timestamp (or a date) is taken as UTC; one with an offset is converted to UTC.

    Records then carry an aware time at offset zero, and what the worker repeats in alerts says
    so ("Z"). Already at offset zero (pydantic's own UTC zone): kept as it is, the cheap path.
    """
    offset = ts.utcoffset()
    if offset is None:
        utc = ts.replace(tzinfo=UTC)
    elif not offset:
        utc = ts
    else:
        try:
            utc = ts.astimezone(UTC)
        except OverflowError:
            utc = None
    if utc is None or not EARLIEST_TS <= utc < LATEST_TS:
        # Far-off times are producer bugs, and near year 9999 any arithmetic on them (the next grid
        # slot of a series) overflows Python's datetime.
        raise PydanticCustomError(
            "timestamp_range",
            "timestamp {ts} is outside {earliest} .. {latest} (UTC); check the producer's clock and units",
            {
                "ts": ts.isoformat(),
                "earliest": EARLIEST_TS.date().isoformat(),
                "latest": LATEST_TS.date().isoformat(),
            },
        )
    return utc


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime normalised to UTC: RFC 3339 text (a missing offset means UTC), a date, or Unix seconds."""

_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/=")
_BASE64_RULES = (
    "data must be standard base64 (RFC 4648 alphabet A-Z a-z 0-9 + /, padded with = to a multiple "
    "of 4 characters; no line breaks, spaces, or URL-safe - and _): {problem}"
)


def _base64_problem(data: str, exc: Exception) -> str:
    """What is wrong with `data`, for a producer to fix (only called once decoding failed)."""
    if "-" in data or "_" in data:
        return "it contains - or _ (URL-safe base64); encode with + and / instead"
    if "\n" in data or "\r" in data:
        return "it contains line breaks (MIME-style wrapping); send it as one unbroken line"
    for i, ch in enumerate(data):
        if ch not in _BASE64_ALPHABET:
            what = "a space" if ch.isspace() else f"{ch!r}"
            return f"it contains {what} at position {i}, which is not a base64 character"
    body = data.rstrip("=")
    if "=" in body:
        return f"it has = at position {body.index('=')}; = may appear only as padding at the end"
    if len(body) % 4 == 1:
        return (
            f"it has {len(body)} characters before any padding, one more than a multiple of 4: "
            "it was cut short or has a stray character"
        )
    if len(data) % 4:
        return (
            f"its length, {len(data)} characters, is not a multiple of 4: "
            "add the = padding (unpadded base64 is not accepted)"
        )
    return str(exc)


# The record kinds, each a model below with its `kind` tag; what names a kind elsewhere (manifests,
# outputs, messages) takes it from here.
Kind = Literal["image", "metric"]
KINDS: tuple[str, ...] = get_args(Kind)


class ImageRecord(BaseModel):
    """An image to score: raw row-major pixels, base64-encoded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["image"]
    id: str | None = Field(None, description="Record id; defaults to topic:partition:offset.")
    ts: UtcDatetime | None = Field(
        None, description="When the image was taken (RFC 3339; without an offset, UTC)."
    )
    source: str | None = Field(None, description="Where the image comes from, e.g. a camera.")
    model: str | None = Field(None, description="Model to score with; the worker's default if unset.")
    shape: list[Dim] = Field(..., min_length=1, max_length=4, description="e.g. [28, 28]")
    dtype: Literal["uint8", "float32"] = Field(
        ..., description="uint8 (scaled by 1/255) or float32 (already in [0, 1]), little-endian."
    )
    data: str = Field(..., description="base64 of the raw row-major pixel bytes")

    # The decoded pixels live in a plain slot, not a pydantic private attribute: with one,
    # pydantic runs an extra hook on every validation that costs more than the decode itself
    # at worker rates (py-spy). They are kept as the bytes sent: the worker turns a whole batch
    # of them into its model input in a few numpy calls (worker/batch.py), where an array per
    # image cost the loop's thread several numpy calls a record. A copy or an unpickled record
    # does not carry the slot, so the pixels are decoded again there.
    __slots__ = ("_pixel_bytes",)

    @model_validator(mode="after")
    def _decode_pixels(self) -> ImageRecord:
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PydanticCustomError(
                "bad_base64", _BASE64_RULES, {"problem": _base64_problem(self.data, exc)}
            ) from None
        dtype, _ = PIXEL_DTYPES[self.dtype]
        expected = math.prod(self.shape) * dtype.itemsize
        if len(raw) != expected:
            raise PydanticCustomError(
                "shape_mismatch",
                "data holds {got} bytes but shape {shape} of {dtype} needs {expected}",
                {"got": len(raw), "shape": self.shape, "dtype": self.dtype, "expected": expected},
            )
        if self.dtype == "float32":
            pixels = np.frombuffer(raw, dtype=dtype)
            if not np.isfinite(pixels).all():
                raise PydanticCustomError("non_finite", "pixels contain NaN or infinity", {})
            if pixels.min(initial=0.0) < 0.0 or pixels.max(initial=0.0) > 1.0:
                raise PydanticCustomError("out_of_range", "float32 pixels must lie in [0, 1]", {})
        object.__setattr__(self, "_pixel_bytes", raw)  # the model is frozen
        return self

    @property
    def pixel_bytes(self) -> bytes:
        """The pixels as sent, checked: `dtype` elements, little-endian, row-major in `shape`."""
        try:
            return self._pixel_bytes
        except AttributeError:  # a copy: the slot is not copied
            return self._decode_pixels()._pixel_bytes

    @property
    def pixels(self) -> np.ndarray:
        """The image as float32 in [0, 1], in the record's shape."""
        dtype, scale = PIXEL_DTYPES[self.dtype]
        pixels = np.frombuffer(self.pixel_bytes, dtype=dtype).reshape(self.shape)
        return pixels if self.dtype == "float32" else np.multiply(pixels, np.float32(scale), dtype=np.float32)


MISPLACED_TIME = ("timestamp", "time", "datetime", "date")


class MetricPoint(BaseModel):
    """One point of a metric series (latency, error rate, queue depth, a KPI)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["metric"]
    series: str = Field(..., min_length=1, max_length=512, description="Series name.")
    labels: dict[str, str] = Field(default_factory=dict, description="Series labels.")
    ts: UtcDatetime | None = Field(
        None, description="Timestamp of the point (RFC 3339; without an offset, UTC)."
    )
    value: float = Field(..., strict=True, allow_inf_nan=False)
    id: str | None = Field(None, description="Record id; defaults to topic:partition:offset.")
    model: str | None = Field(None, description="Model to score with; the worker's default if unset.")
    # The time under one of the names a CSV column may have (training reads them): refused, naming
    # `ts`, because a point without `ts` goes to the series' next slot, which is wrong after a gap.
    misplaced_time: SkipJsonSchema[object] = Field(
        None, validation_alias=AliasChoices(*MISPLACED_TIME), exclude=True, repr=False
    )

    @field_validator("misplaced_time")
    @classmethod
    def _time_goes_in_ts(cls, value: object) -> object:
        raise PydanticCustomError(
            "misplaced_time",
            "a metric point's time goes in `ts` (RFC 3339, e.g. \"2026-11-22T10:00:00Z\"), not in this "
            "field: without `ts` the point would go to the series' next slot",
        )

    @property
    def series_key(self) -> str:
        return series_key(self.series, self.labels)


def series_key(series: str, labels: dict[str, str]) -> str:
    """The Kafka key of a series: its name plus its sorted labels, Prometheus style.

    Label values are escaped as in the Prometheus text format (backslash, double quote and
    newline as \\\\, \\" and \\n), so no value can close its quotes and pose as another label;
    values without those characters appear as they are.
    """
    if not labels:
        return series
    inner = ",".join(f'{k}="{_escape_label_value(labels[k])}"' for k in sorted(labels))
    return f"{series}{{{inner}}}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


Record = Annotated[ImageRecord | MetricPoint, Field(discriminator="kind")]
