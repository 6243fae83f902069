"""What the worker publishes: alerts, and (optionally) the score of every record."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from schemas.detect.params import PARTS
from schemas.records import Kind


class SourcePosition(BaseModel):
    """Where a record was read from, so anyone can find the original message."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int = Field(..., ge=0)
    offset: int = Field(..., ge=0)


class ScoredOutput(BaseModel):
    """What an alert and a score message share: the record, the model that scored it, the score."""

    record_id: str
    kind: Kind
    model: str
    model_version: str
    score: float
    threshold: float
    ts: datetime | None = Field(
        None, description="The record's own timestamp; metric points without one: their grid time."
    )
    source: SourcePosition
    series_key: str | None = Field(
        None, description="Metric records: series plus sorted labels (the Kafka key)."
    )
    value: float | None = Field(None, description="Metric records: value of the window's last point.")
    expected: float | None = Field(
        None, description="Metric records: the value the detector expected for the point (the seasonal "
        "prediction where a season is in use, else the median of the window's past), in the series' units",
    )
    lower: float | None = Field(
        None, description="Metric records: the normal band's low end: values from lower to upper are "
        "ordinary for this series now: within the detector's running 99th percentile of its own deviations",
    )
    upper: float | None = Field(None, description="Metric records: the normal band's high end")
    reconstructed: float | None = Field(
        None, description="Metric records: the value the model's VAE rebuilds for the point from its window "
        "(the decoder at the latent mean), in the series' units; only from bundles whose graph computes it, "
        "and not with --no-explain",
    )
    detector: Literal[PARTS] | None = Field(  # type: ignore[valid-type]
        None,
        description="Metric records: the part that gave the score: vae (the model's reconstruction error "
        "of the window), level (a robust z-score against the window's past), season (against the same "
        "phase of earlier days or weeks), drift (a short mean against a long one), far (against the "
        "series' long-run level and spread), flat (a stuck value), spike (far outside the recent range)",
    )


MAX_MAP_SIDE = 32  # an anomaly map has at most this many cells a side: larger images are pooled


def pool_size(image_shape: tuple[int, ...]) -> int:
    """Image pixels per anomaly-map cell side: 1 up to 32x32, so that no map is over 32 cells a side."""
    return max(1, math.ceil(max(image_shape[0], image_shape[1]) / MAX_MAP_SIDE))


def map_shape(image_shape: tuple[int, ...]) -> tuple[int, int]:
    """The anomaly map's cells (down, across) for an image of this shape: pooled by pool_size."""
    k = pool_size(image_shape)
    return math.ceil(image_shape[0] / k), math.ceil(image_shape[1] / k)


class AnomalyRegion(BaseModel):
    """The box around an image's most anomalous region, in the image's pixels (0, 0 at the top left)."""

    x: int = Field(..., ge=0, description="left column")
    y: int = Field(..., ge=0, description="top row")
    width: int = Field(..., ge=1)
    height: int = Field(..., ge=1)
    error_share: float = Field(
        ..., ge=0.0, le=1.0, description="share of the image's reconstruction error (sum of |residual| over "
        "the map's cells) that lies in the box",
    )


class AnomalyMap(BaseModel):
    """Where an image alert's reconstruction error lies: |image - reconstruction| per cell, on image
    alerts from models whose graph computes it (worker/explain.py)."""

    height: int = Field(..., ge=1, le=MAX_MAP_SIDE, description="cells down")
    width: int = Field(..., ge=1, le=MAX_MAP_SIDE, description="cells across")
    cell: int = Field(
        ..., ge=1, description="image pixels per cell side: 1 up to 32x32 images, larger ones are averaged "
        "over cell x cell squares"
    )
    pixels: str = Field(
        ..., description="base64 of height x width bytes, row by row: each cell's |residual| (pixel "
        "intensities in [0, 1]) scaled so that the largest is 255"
    )
    max_error: float = Field(..., ge=0.0, description="the |residual| of a cell at 255")
    direction: Literal["brighter", "darker"] = Field(
        ..., description="the region is where the image is brighter (or darker) than its reconstruction"
    )
    region: AnomalyRegion


class Evidence(BaseModel):
    """Why a metric alert fired, in numbers: what the firing part measured the point against (fields
    that do not apply to the part are absent)."""

    part: Literal[PARTS]  # type: ignore[valid-type]
    summary: str = Field(..., description="The same in one sentence, for a human")
    reference: float | None = Field(
        None, description="What the point was measured against, in the series' units: level, vae: the "
        "median of the window's past; season: the seasonal prediction; drift: the long mean (the "
        "short mean is `deviations` units away); far: the series' long-run level; flat: the stuck "
        "value; spike: the window's median",
    )
    scale: float | None = Field(
        None, description="The part's unit of deviation, in the series' units (spike: the recent range)"
    )
    deviations: float | None = Field(None, description="How many `scale`s the point is from `reference`")
    span_points: int | None = Field(
        None, description="level, vae, spike: the points the median and scale are taken over"
    )
    span_s: float | None = Field(None, description="The same in seconds of the series' grid")
    period: Literal["day", "week"] | None = Field(None, description="season: the season in use")
    run: int | None = Field(None, description="flat: the points the value has not changed for")
    longest_run: int | None = Field(
        None, description="flat: the longest recent run of the series it is judged against"
    )


class AnomalyAlert(ScoredOutput):
    """Published to the alerts topic for every record scored at or above the threshold.

    Kafka key: the record id (images) or the series key (metrics).
    """

    severity: float | None = Field(
        None, ge=0.0, le=1.0, description="Min-max normalised score; 0.5 is the threshold."
    )
    detected_at: datetime
    series: str | None = Field(None, description="Metric alerts: series name.")
    labels: dict[str, str] | None = Field(None, description="Metric alerts: series labels.")
    window: int | None = Field(None, description="Metric alerts: points in the scored window.")
    detector_score: float | None = Field(
        None,
        description="Metric alerts: that part's raw score (flat: the run length in points; spike: the "
        "distance from the window's median)",
    )
    detector_threshold: float | None = Field(
        None, description="Metric alerts: the raw score at which that part alone alerts for this series now"
    )
    anomaly_map: AnomalyMap | None = Field(
        None, description="Image alerts: where the error lies (absent if the model's graph has no "
        "anomaly_map output, or with --no-explain)",
    )
    evidence: Evidence | None = Field(None, description="Metric alerts: the firing part's numbers")


class ScoreMessage(ScoredOutput):
    """Published to the optional scores topic for every scored record that is not an alert."""


def output_json(output: type[ScoredOutput], fields: dict[str, object]) -> bytes:
    """The JSON of an output made of parts that are already valid: the bytes of
    `output.model_construct(**fields).model_dump_json(exclude_none=True)`, with `source` given as a
    dict, in a third of the time (the worker writes one per scored record). Fields the output does
    not have are left out, the others go in the model's order."""
    names = _FIELD_ORDER.get(output) or _FIELD_ORDER.setdefault(output, tuple(output.model_fields))
    return to_json({k: v for k in names if (v := fields.get(k)) is not None}, inf_nan_mode="null",
                   exclude_none=True)  # fmt: skip


_FIELD_ORDER: dict[type[ScoredOutput], tuple[str, ...]] = {}
