"""Input records: what producers put on the input topics (one JSON object per message)."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

# Bytes per element of each supported pixel dtype, and how to bring it to [0, 1].
PIXEL_DTYPES: dict[str, tuple[np.dtype, float]] = {
    "uint8": (np.dtype(np.uint8), 1.0 / 255.0),
    "float32": (np.dtype("<f4"), 1.0),
}

Dim = Annotated[int, Field(strict=True, ge=1, le=65536)]


class ImageRecord(BaseModel):
    """An image to score: raw row-major pixels, base64-encoded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["image"]
    id: str | None = Field(None, description="Record id; defaults to topic:partition:offset.")
    ts: datetime | None = Field(None, description="When the image was taken (RFC 3339).")
    source: str | None = Field(None, description="Where the image comes from, e.g. a camera.")
    model: str | None = Field(None, description="Model to score with; the worker's default if unset.")
    shape: list[Dim] = Field(..., min_length=1, max_length=4, description="e.g. [28, 28]")
    dtype: Literal["uint8", "float32"] = Field(
        ..., description="uint8 (scaled by 1/255) or float32 (already in [0, 1]), little-endian."
    )
    data: str = Field(..., description="base64 of the raw row-major pixel bytes")

    _pixels: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _decode_pixels(self) -> ImageRecord:
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PydanticCustomError(
                "bad_base64", "data is not valid base64: {err}", {"err": str(exc)}
            ) from None
        dtype, scale = PIXEL_DTYPES[self.dtype]
        expected = math.prod(self.shape) * dtype.itemsize
        if len(raw) != expected:
            raise PydanticCustomError(
                "shape_mismatch",
                "data holds {got} bytes but shape {shape} of {dtype} needs {expected}",
                {"got": len(raw), "shape": self.shape, "dtype": self.dtype, "expected": expected},
            )
        pixels = np.frombuffer(raw, dtype=dtype).reshape(self.shape)
        if self.dtype == "float32":
            if not np.isfinite(pixels).all():
                raise PydanticCustomError("non_finite", "pixels contain NaN or infinity", {})
            if pixels.min(initial=0.0) < 0.0 or pixels.max(initial=0.0) > 1.0:
                raise PydanticCustomError("out_of_range", "float32 pixels must lie in [0, 1]", {})
        else:
            pixels = np.multiply(pixels, np.float32(scale), dtype=np.float32)
        # Straight into pydantic's private store: its attribute hooks cost more than the decode
        # itself at worker rates (py-spy).
        self.__pydantic_private__["_pixels"] = pixels
        return self

    @property
    def pixels(self) -> np.ndarray:
        """The image as float32 in [0, 1], in the record's shape (read-only)."""
        return self.__pydantic_private__["_pixels"]


class MetricPoint(BaseModel):
    """One point of a metric series (latency, error rate, queue depth, a KPI)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["metric"]
    series: str = Field(..., min_length=1, max_length=512, description="Series name.")
    labels: dict[str, str] = Field(default_factory=dict, description="Series labels.")
    ts: datetime | None = Field(None, description="Timestamp of the point (RFC 3339).")
    value: float = Field(..., strict=True, allow_inf_nan=False)
    id: str | None = Field(None, description="Record id; defaults to topic:partition:offset.")
    model: str | None = Field(None, description="Model to score with; the worker's default if unset.")

    @property
    def series_key(self) -> str:
        return series_key(self.series, self.labels)


def series_key(series: str, labels: dict[str, str]) -> str:
    """The Kafka key of a series: its name plus its sorted labels, Prometheus style."""
    if not labels:
        return series
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{series}{{{inner}}}"


Record = Annotated[ImageRecord | MetricPoint, Field(discriminator="kind")]
