"""Decode a message and pick its model: a batch item, a metric point held back, or a dead letter.

Never raises. A metric point goes into its series' window (worker/series.py); only a
point that completes a full window becomes a batch item. The others (warming, duplicate,
late) are done with: nothing to publish, and they are counted by outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import ImageRecord, MetricPoint, Reason, Rejection, decode
from worker.batch import Item
from worker.registry import LoadedModel, ModelRegistry
from worker.series import PointOutcome, SeriesWindows
from worker.transport import Consumed


@dataclass(frozen=True, slots=True)
class Held:
    """A metric point that completed no window to score (see PointOutcome)."""

    model: LoadedModel
    outcome: PointOutcome


def route(
    message: Consumed,
    registry: ModelRegistry,
    max_bytes: int,
    windows: dict[str, SeriesWindows],
) -> tuple[LoadedModel, Item] | Held | Rejection:
    result = decode(message.value, max_bytes=max_bytes)
    if isinstance(result, Rejection):
        return result
    model = registry.resolve_for(result.model, result.kind)
    if model is None:
        wanted = result.model or f"(a default model for {result.kind} records)"
        return Rejection(
            Reason.UNKNOWN_MODEL, f"model {wanted} is not served here; served: {', '.join(registry.names())}"
        )
    if model.manifest.kind != result.kind:
        return Rejection(
            Reason.UNKNOWN_MODEL,
            f"model {model.key} scores {model.manifest.kind} records, not {result.kind} records",
        )
    record_id = result.id or f"{message.topic}:{message.partition}:{message.offset}"
    if isinstance(result, MetricPoint):
        return _metric(message, model, result, record_id, windows[model.key])
    assert isinstance(result, ImageRecord)
    if tuple(result.shape) != model.record_shape:
        return Rejection(
            Reason.SHAPE_MISMATCH,
            f"image shape {result.shape} does not match model {model.key}'s input {list(model.record_shape)}",
        )
    return model, Item(message=message, record=result, record_id=record_id, row=result.pixels)


def _metric(
    message: Consumed, model: LoadedModel, point: MetricPoint, record_id: str, store: SeriesWindows
) -> tuple[LoadedModel, Item] | Held:
    ts = point.ts.timestamp() if point.ts is not None else None  # records carry ts in UTC
    kafka_ts = message.timestamp / 1000.0 if message.timestamp and message.timestamp > 0 else None
    window = store.push(point.series_key, ts, point.value, (message.topic, message.partition), kafka_ts)
    if isinstance(window, PointOutcome):
        return Held(model, window)
    item = Item(
        message=message,
        record=point,
        record_id=record_id,
        row=window.values,
        window=window,
        point_ts=window.slot_ts,
    )
    return model, item
