"""Decode a message and pick its model: a batch item, or a dead-letter reason. Never raises."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from schemas import ImageRecord, MetricPoint, Reason, Rejection, decode
from worker.batch import Item
from worker.registry import LoadedModel, ModelRegistry


def route(
    message: ConsumerRecord, registry: ModelRegistry, max_bytes: int
) -> tuple[LoadedModel, Item] | Rejection:
    result = decode(message.value, max_bytes=max_bytes)
    if isinstance(result, Rejection):
        return result
    if isinstance(result, MetricPoint):
        return Rejection(Reason.UNKNOWN_MODEL, "this worker serves no metric model yet; send images")
    assert isinstance(result, ImageRecord)
    model = registry.resolve(result.model)
    if model is None:
        wanted = result.model or "(the default model)"
        return Rejection(
            Reason.UNKNOWN_MODEL, f"model {wanted} is not served here; served: {', '.join(registry.names())}"
        )
    if model.manifest.kind != "image":
        return Rejection(Reason.UNKNOWN_MODEL, f"model {model.key} scores {model.manifest.kind} records")
    if tuple(result.shape) != model.record_shape:
        return Rejection(
            Reason.SHAPE_MISMATCH,
            f"image shape {result.shape} does not match model {model.key}'s input {list(model.record_shape)}",
        )
    record_id = result.id or f"{message.topic}:{message.partition}:{message.offset}"
    return model, Item(message=message, record=result, record_id=record_id)
