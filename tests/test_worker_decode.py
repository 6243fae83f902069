"""The decode stage (worker/decode.py): a message becomes a batch item with its model, or a rejection."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import Reason, Rejection, image_message, metric_message
from tests.worker_fakes import decoded


def test_decode_gives_the_default_model_and_a_default_id(tiny_models) -> None:
    model, item = decoded(image_message(np.zeros((28, 28), np.uint8)), tiny_models, offset=7)
    assert model.key == "tiny-vae:1" and item.record_id == "in:0:7"
    raw = image_message(np.zeros((28, 28), np.uint8), id="x", model="tiny-vae:1")
    model, item = decoded(raw, tiny_models)
    assert item.record_id == "x"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (image_message(np.zeros((28, 28), np.uint8), model="other"), Reason.UNKNOWN_MODEL),
        (image_message(np.zeros((28, 28), np.uint8), model="tiny-vae:9"), Reason.UNKNOWN_MODEL),
        (image_message(np.zeros((14, 14), np.uint8)), Reason.SHAPE_MISMATCH),
        (metric_message("cpu", 1.0)[1], Reason.UNKNOWN_MODEL),
        (b"nope", Reason.INVALID_JSON),
    ],
)
def test_decode_rejections(tiny_models, raw: bytes, reason: Reason) -> None:
    result = decoded(raw, tiny_models)
    assert isinstance(result, Rejection) and result.reason is reason and result.error


def test_a_record_of_a_kind_no_model_here_scores_is_told_what_to_do(tiny_models) -> None:
    result = decoded(metric_message("cpu", 1.0)[1], tiny_models)
    assert isinstance(result, Rejection) and result.error == (
        "no model here scores metric records by default (served: tiny-vae:1); name one in the record's "
        '"model" or serve a metric model (--models, --default-model)'
    )
    named = decoded(image_message(np.zeros((28, 28), np.uint8), model="other"), tiny_models)
    assert named.error == "model other is not served here; served: tiny-vae:1"
