"""The decode stage: message bytes -> a record (schemas.decode), its model, and the model's input as
its kind prepares it (worker/kinds/). Never raises.

A message becomes a batch item, a record held back (a metric point that completes no window:
nothing to publish, counted by its kind), or a rejection to dead-letter with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas import Reason, Rejection, decode
from worker.batch import Item
from worker.kafka.protocol import Consumed
from worker.kinds import Held, RecordKind
from worker.serving.registry import LoadedModel, ModelRegistry

MAX_ID_CHARS = 1024  # outputs repeat the id (as their key, too): a longer one is cut, with a marker


def cut_id(record_id: str) -> str:
    """The id the record's outputs carry: its own, or its start and a marker saying it was cut."""
    if len(record_id) <= MAX_ID_CHARS:
        return record_id
    return f"{record_id[: MAX_ID_CHARS - 64]}...(cut: the id is {len(record_id):,} characters)"


def decode_message(
    message: Consumed, models: ModelRegistry, kinds: Mapping[str, RecordKind], max_bytes: int
) -> tuple[LoadedModel, Item] | Held | Rejection:
    unreadable = getattr(message, "unreadable", None)  # only on a Message a client could not parse
    if unreadable:
        return Rejection(Reason.UNREADABLE, unreadable)
    record = decode(message.value, max_bytes=max_bytes)
    if isinstance(record, Rejection):
        return record
    model = models.resolve_for(record.model, record.kind)
    if model is None:
        served = ", ".join(models.names())
        if record.model:
            why = f"model {record.model} is not served here; served: {served}"
        else:  # no name, and no default for its kind: which model would have to be named, or started
            kind = record.kind
            why = (f"no model here scores {kind} records by default (served: {served}); name one in the "
                   f"record's \"model\" or serve a {kind} model (--models, --default-model)")  # fmt: skip
        return Rejection(Reason.UNKNOWN_MODEL, why)
    if model.manifest.kind != record.kind:
        return Rejection(
            Reason.UNKNOWN_MODEL,
            f"model {model.key} scores {model.manifest.kind} records, not {record.kind} records",
        )
    record_id = cut_id(record.id) if record.id else f"{message.topic}:{message.partition}:{message.offset}"
    prepared = kinds[model.key].prepare(message, record, record_id)
    return (model, prepared) if isinstance(prepared, Item) else prepared
