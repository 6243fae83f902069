"""Property tests: whatever bytes arrive, decode returns a record or a reason, never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

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
from schemas.records import EARLIEST_TS, LATEST_TS

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


# --- series keys: one key per series ------------------------------------------------------

label_text = st.text(alphabet=st.sampled_from('ab=,{}"\\\n é'), max_size=6)
label_names = st.text(alphabet=st.sampled_from("abz_"), min_size=1, max_size=4)


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """Read a series key back (the inverse of series_key for label names without = , { } or quotes)."""
    if not key.endswith("}"):
        return key, {}
    series, _, rest = key.partition("{")
    labels, i = {}, 0
    while i < len(rest) - 1:
        name_end = rest.index('="', i)
        name, i, chars = rest[i:name_end], name_end + 2, []
        while rest[i] != '"':
            if rest[i] == "\\":
                chars.append({"\\": "\\", '"': '"', "n": "\n"}[rest[i + 1]])
                i += 2
            else:
                chars.append(rest[i])
                i += 1
        labels[name] = "".join(chars)
        i += 2 if rest[i + 1] == "," else 1
    return series, labels


@given(st.dictionaries(label_names, label_text, max_size=4))
def test_series_key_reads_back_to_its_labels(labels: dict[str, str]) -> None:
    """So no two label sets share a key: a value cannot close its quotes and pose as another label."""
    key = series_key("api.latency", labels)
    assert parse_series_key(key) == ("api.latency", labels)


# --- the encoders: whatever they return, the decoder accepts -----------------------------

# RFC 3339 offsets are whole minutes; none (a naive datetime) is taken as UTC.
zones = (
    st.none() | st.just(UTC) | st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
)


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers() | st.none(), max_size=3),
    st.datetimes(timezones=zones),
)
@settings(max_examples=300)
def test_metric_message_returns_only_what_decodes(value: float, labels: dict, ts: datetime) -> None:
    try:
        key, raw = metric_message("s", value, labels=labels, ts=ts)
    except ValueError:
        assert (
            not np.isfinite(value)
            or any(not isinstance(v, str) for v in labels.values())
            or not EARLIEST_TS <= (ts if ts.tzinfo else ts.replace(tzinfo=UTC)) < LATEST_TS
        )
        return
    point = decode(raw)
    assert isinstance(point, MetricPoint), point
    assert point.value == value and point.labels == labels and point.series_key == key.decode()
    assert point.ts == (ts if ts.tzinfo else ts.replace(tzinfo=UTC)) and point.ts.utcoffset() == timedelta(0)


@given(arrays(np.float32, array_shapes(max_dims=3, max_side=5), elements=st.floats(width=32)))
def test_image_message_returns_only_what_decodes(pixels: np.ndarray) -> None:
    try:
        raw = image_message(pixels)
    except ValueError:
        assert not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1)
        return
    record = decode(raw)
    assert isinstance(record, ImageRecord), record
    np.testing.assert_array_equal(record.pixels, pixels)
