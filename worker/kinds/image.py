"""Image records: the pixels, checked against the model's record shape, are the model input; an image
alerts at score >= the model's threshold. Outputs carry no fields beyond the common ones."""

from __future__ import annotations

import numpy as np

from schemas import ImageRecord, Reason, Rejection
from worker.batch import Item
from worker.decide import Verdicts, against_threshold
from worker.kafka.protocol import Consumed
from worker.kinds.base import RecordKind


class ImageKind(RecordKind):
    name = "image"

    def prepare(self, message: Consumed, record: ImageRecord, record_id: str) -> Item | Rejection:
        if tuple(record.shape) != self.model.record_shape:
            return Rejection(
                Reason.SHAPE_MISMATCH,
                f"image shape {record.shape} does not match model {self.model.key}'s input "
                f"{list(self.model.record_shape)}",
            )
        return Item(message=message, record=record, record_id=record_id, row=record.pixels)

    def decide(self, items: list[Item], scores: np.ndarray, prepared: object) -> Verdicts:
        return against_threshold(self.model.manifest, scores)
