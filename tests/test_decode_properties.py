"""Property tests: whatever bytes arrive, decode returns a record or a reason, never raises."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ImageRecord, MetricPoint, Reason, Rejection, decode, image_message, metric_message

VALID = [
    image_message(np.arange(784, dtype=np.uint8).reshape(28, 28) % 200, id="x"),
    image_message(np.full((4, 4), 0.5, dtype=np.float32)),
    metric_message("cpu", 0.25, labels={"host": "a"}, ts="2026-11-22T10:00:00Z")[1],
]


def check(raw: bytes) -> ImageRecord | MetricPoint | Rejection:
    result = decode(raw, max_bytes=4096)
    assert isinstance(result, ImageRecord | MetricPoint | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason) and result.error
    return result


@given(st.binary(max_size=600))
def test_random_bytes(raw: bytes) -> None:
    check(raw)


@given(st.sampled_from(VALID), st.data())
def test_truncated_valid_records(raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    assert isinstance(check(raw[:cut]), Rejection)


@given(st.sampled_from(VALID), st.data())
@settings(max_examples=300)
def test_byte_mutations(raw: bytes, data: st.DataObject) -> None:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    check(bytes(buf))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)


@given(
    st.sampled_from(VALID),
    st.sampled_from(["kind", "shape", "dtype", "data", "series", "value", "labels", "ts", "id"]),
    json_values,
)
@settings(max_examples=300)
def test_field_replaced_by_any_json_value(raw: bytes, field: str, value: object) -> None:
    obj = json.loads(raw)
    obj[field] = value
    check(json.dumps(obj).encode())


@given(st.lists(st.integers(1, 40), min_size=1, max_size=3), st.sampled_from(["uint8", "float32"]))
def test_wrong_shapes_are_shape_mismatch(shape: list[int], dtype: str) -> None:
    obj = json.loads(VALID[0])
    obj.update(shape=shape, dtype=dtype)
    result = check(json.dumps(obj).encode())
    expected_bytes = int(np.prod(shape)) * (1 if dtype == "uint8" else 4)
    if expected_bytes != 784:
        assert isinstance(result, Rejection) and result.reason is Reason.SHAPE_MISMATCH


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_metric_values(value: float) -> None:
    raw = json.dumps({"kind": "metric", "series": "s", "value": value}).encode()
    result = check(raw)
    if np.isfinite(value):
        assert isinstance(result, MetricPoint) and result.value == value
    else:
        assert isinstance(result, Rejection) and result.reason is Reason.NON_FINITE
