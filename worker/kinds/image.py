"""Image records: the pixels, checked against the model's record shape, are the model input; an image
alerts at score >= the model's threshold. An alert carries its anomaly map where the graph computes one
(worker/explain.py); score messages carry no fields beyond the common ones."""

from __future__ import annotations

import logging

import numpy as np

from schemas import ImageRecord, Reason, Rejection
from schemas.outputs import pool_size
from schemas.records import PIXEL_DTYPES
from worker.batch import Item, RowFormat
from worker.decide import Verdicts, against_threshold
from worker.explain import anomaly_maps
from worker.kafka.protocol import Consumed
from worker.kinds.base import RecordKind
from worker.serving.registry import LoadedModel
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# An image's row is the bytes its record carried; the batch scales uint8 ones to [0, 1] as it makes them rows.
ROW_FORMATS: dict[str, RowFormat] = {
    name: (dtype, None if scale == 1.0 else np.float32(scale))
    for name, (dtype, scale) in PIXEL_DTYPES.items()
}


class ImageKind(RecordKind):
    name = "image"

    def __init__(self, model: LoadedModel, settings: WorkerSettings) -> None:
        super().__init__(model, settings)
        self.cell = pool_size(model.record_shape)  # the graph's pooling: the registry checked its map shape
        self._map_failed = False

    def prepare(self, message: Consumed, record: ImageRecord, record_id: str) -> Item | Rejection:
        if tuple(record.shape) != self.model.record_shape:
            return Rejection(
                Reason.SHAPE_MISMATCH,
                f"image shape {record.shape} does not match model {self.model.key}'s input "
                f"{list(self.model.record_shape)}",
            )
        return Item(message=message, record=record, record_id=record_id, row=record.pixel_bytes,
                    row_format=ROW_FORMATS[record.dtype])  # fmt: skip

    def decide(
        self, items: list[Item], scores: np.ndarray, prepared: object, explaining: np.ndarray | None = None
    ) -> Verdicts:
        return against_threshold(self.model.manifest, scores)  # the maps go to the alerts (explain)

    def explain(self, verdicts: Verdicts, maps: np.ndarray | None) -> dict[int, dict[str, object]] | None:
        if maps is None:
            return None
        alerts = np.flatnonzero(verdicts.alerts)
        try:  # all the batch's alerts at once: the array work is done once
            return dict(zip(alerts.tolist(), anomaly_maps(maps[alerts], self.cell, self.model.record_shape),
                            strict=True))  # fmt: skip
        except (ValueError, IndexError) as exc:  # the alerts go out without their maps, never lost for it
            if not self._map_failed:
                log.warning("%s: alerts go out without anomaly maps: %s", self.model.key, exc)
                self._map_failed = True
            return None

    def alert_fields(
        self, item: Item, verdicts: Verdicts, i: int, explained: dict[int, dict[str, object]] | None
    ) -> dict[str, object]:
        found = explained.get(i) if explained else None
        return {"anomaly_map": found} if found is not None else {}
