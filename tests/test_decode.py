"""schemas.decode: each kind of bad input gets its own reason; good input round-trips."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from schemas import (
    ImageRecord,
    MetricPoint,
    Reason,
    Rejection,
    decode,
    image_message,
    metric_message,
    series_key,
)

PIXELS = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)


def image(**overrides: object) -> bytes:
    msg = json.loads(image_message(PIXELS, id="cam-7/000123", ts="2026-11-22T10:00:00Z"))
    msg.update(overrides)
    return json.dumps(msg).encode()


def reason_of(raw: bytes, **kw: int) -> Reason:
    result = decode(raw, **kw)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert result.error, "a rejection must say what is wrong"
    return result.reason


def test_image_round_trip_scales_uint8_to_unit_range() -> None:
    record = decode(image())
    assert isinstance(record, ImageRecord)
    assert record.id == "cam-7/000123"
    assert record.ts is not None and record.ts.year == 2026
    assert record.pixels.dtype == np.float32
    np.testing.assert_allclose(record.pixels, PIXELS.astype(np.float32) / 255.0)


def test_float32_image_is_taken_as_is() -> None:
    pixels = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    record = decode(image_message(pixels))
    assert isinstance(record, ImageRecord)
    np.testing.assert_array_equal(record.pixels, pixels)


def test_metric_point_and_series_key() -> None:
    key, value = metric_message("api.latency_p99", 123.4, labels={"host": "a", "az": "x"})
    record = decode(value)
    assert isinstance(record, MetricPoint)
    assert record.value == 123.4
    assert record.series_key == key.decode() == 'api.latency_p99{az="x",host="a"}'
    assert series_key("up", {}) == "up"


def test_metric_accepts_integer_value() -> None:
    record = decode(b'{"kind":"metric","series":"q","value":3}')
    assert isinstance(record, MetricPoint) and record.value == 3.0


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert isinstance(decode(image(extra_field="x")), ImageRecord)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", Reason.INVALID_JSON),  # not UTF-8
        (b'{"kind": "image", ', Reason.INVALID_JSON),  # truncated JSON
        (b"", Reason.INVALID_JSON),
        (b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
        (b'"image"', Reason.NOT_AN_OBJECT),
        (b"42", Reason.NOT_AN_OBJECT),
        (b'{"series": "a", "value": 1}', Reason.UNKNOWN_KIND),  # kind missing
        (b'{"kind": "video"}', Reason.UNKNOWN_KIND),
        (b'{"kind": "metric", "value": 1}', Reason.SCHEMA),  # series missing
        (b'{"kind": "metric", "series": "a", "value": "1.5"}', Reason.SCHEMA),  # wrong type
        (b'{"kind": "metric", "series": "a", "value": NaN}', Reason.NON_FINITE),
        (b'{"kind": "metric", "series": "a", "value": Infinity}', Reason.NON_FINITE),
        (b'{"kind": "metric", "series": "a", "value": 1e999}', Reason.NON_FINITE),
    ],
)
def test_each_bad_input_kind_has_its_own_reason(raw: bytes, reason: Reason) -> None:
    assert reason_of(raw) is reason


def test_image_missing_field_is_schema() -> None:
    msg = json.loads(image())
    del msg["dtype"]
    assert reason_of(json.dumps(msg).encode()) is Reason.SCHEMA


def test_image_wrong_typed_shape_is_schema() -> None:
    assert reason_of(image(shape=["28", "28"])) is Reason.SCHEMA
    assert reason_of(image(shape=[28, 0])) is Reason.SCHEMA
    assert reason_of(image(dtype="int64")) is Reason.SCHEMA


def test_bad_base64() -> None:
    assert reason_of(image(data="not*base64!")) is Reason.BAD_BASE64


def test_pixel_count_not_matching_shape() -> None:
    assert reason_of(image(shape=[28, 27])) is Reason.SHAPE_MISMATCH
    short = base64.b64encode(PIXELS.tobytes()[:-1]).decode()
    assert reason_of(image(data=short)) is Reason.SHAPE_MISMATCH
    # float32 needs 4 bytes a pixel: the uint8 payload is a quarter of that.
    assert reason_of(image(dtype="float32")) is Reason.SHAPE_MISMATCH


def test_nan_pixels() -> None:
    pixels = np.zeros((28, 28), dtype=np.float32)
    pixels[3, 4] = np.nan
    assert reason_of(image_message(pixels)) is Reason.NON_FINITE


def test_float_pixels_outside_unit_range() -> None:
    pixels = np.full((28, 28), 2.0, dtype=np.float32)
    assert reason_of(image_message(pixels)) is Reason.OUT_OF_RANGE


def test_too_large() -> None:
    assert reason_of(image(), max_bytes=100) is Reason.TOO_LARGE
    assert isinstance(decode(image(), max_bytes=10_000), ImageRecord)


def test_none_value_is_a_tombstone_not_a_crash() -> None:
    assert reason_of(None) is Reason.INVALID_JSON  # type: ignore[arg-type]


def test_every_decoder_reason_is_reachable() -> None:
    """The reasons above cover every decoder reason; the worker adds the rest."""
    worker_only = {Reason.UNKNOWN_MODEL, Reason.SCORING_FAILED}
    covered = {
        Reason.INVALID_JSON,
        Reason.NOT_AN_OBJECT,
        Reason.UNKNOWN_KIND,
        Reason.SCHEMA,
        Reason.BAD_BASE64,
        Reason.SHAPE_MISMATCH,
        Reason.NON_FINITE,
        Reason.OUT_OF_RANGE,
        Reason.TOO_LARGE,
    }
    assert covered | worker_only == set(Reason)
