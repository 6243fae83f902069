"""schemas.decode: each kind of bad input gets its own reason; good input round-trips."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import TypeAdapter

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
from schemas.decode import PYTHON_FIRST_BYTES

PIXELS = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)


def image(**overrides: object) -> bytes:
    msg = json.loads(image_message(PIXELS, id="cam-7/000123", ts="2026-11-22T10:00:00Z"))
    msg.update(overrides)
    return json.dumps(msg).encode()


def float_image(pixels: np.ndarray) -> bytes:
    """A float32 image message built by hand: image_message refuses pixels the decoder rejects."""
    data = base64.b64encode(pixels.astype("<f4").tobytes()).decode()
    return json.dumps(
        {"kind": "image", "shape": list(pixels.shape), "dtype": "float32", "data": data}
    ).encode()


def rejection(raw: bytes) -> Rejection:
    result = decode(raw)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


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


PAD = "p" * 70_000  # past PYTHON_FIRST_BYTES: the Python parser looks at such a message first


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "metric", "series": "a", "value": "1.5", "pad": "PAD"}',
        b'{"kind": "metric", "series": "a", "value": NaN, "pad": "PAD"}',
        b'{"kind": "video", "pad": "PAD"}',
        b'{"kind": "metric", "value": 1, "pad": "PAD"}',
        b'{"kind": "metric", "series": "a", "value": 1, "pad": "PAD", "pad": "PAD"',
        b'{"kind": "image", "shape": [28, 28], "pixels": "AAAA", "pad": "PAD"}',
    ],
)
def test_a_large_message_gets_the_reason_a_small_one_gets(raw: bytes) -> None:
    small, large = raw.replace(b"PAD", b"p"), raw.replace(b"PAD", PAD.encode())
    assert len(large) > PYTHON_FIRST_BYTES
    assert reason_of(large) is reason_of(small)


def test_a_large_valid_message_decodes_as_a_small_one_does() -> None:
    pixels = np.arange(300 * 300, dtype=np.uint8).reshape(300, 300)
    record = decode(image_message(pixels, id=PAD))
    assert isinstance(record, ImageRecord) and record.id == PAD and record.pixels.shape == (300, 300)
    point = decode(json.dumps({"kind": "metric", "series": "s", "value": 2, "labels": {"l": PAD}}).encode())
    assert isinstance(point, MetricPoint) and point.value == 2.0


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
    assert reason_of(float_image(pixels)) is Reason.NON_FINITE


def test_float_pixels_outside_unit_range() -> None:
    pixels = np.full((28, 28), 2.0, dtype=np.float32)
    assert reason_of(float_image(pixels)) is Reason.OUT_OF_RANGE


def test_too_large() -> None:
    assert reason_of(image(), max_bytes=100) is Reason.TOO_LARGE
    assert isinstance(decode(image(), max_bytes=10_000), ImageRecord)


def test_none_value_is_a_tombstone_not_a_crash() -> None:
    assert reason_of(None) is Reason.INVALID_JSON  # type: ignore[arg-type]


def test_every_decoder_reason_is_reachable() -> None:
    """The reasons above cover every decoder reason; the worker adds the rest."""
    worker_only = {Reason.UNKNOWN_MODEL, Reason.SCORING_FAILED, Reason.OUTPUT_FAILED, Reason.UNREADABLE}
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
        Reason.BAD_TIMESTAMP,
    }
    assert covered | worker_only == set(Reason)


# --- series keys -------------------------------------------------------------------------


def test_series_key_escapes_label_values_so_series_do_not_collide() -> None:
    forged = series_key("api", {"host": 'a",zone="b'})
    assert forged != series_key("api", {"host": "a", "zone": "b"})
    assert forged == 'api{host="a\\",zone=\\"b"}'
    assert series_key("api", {"path": "C:\\tmp", "msg": "two\nlines"}) == (
        'api{msg="two\\nlines",path="C:\\\\tmp"}'
    )
    # A value ending in a backslash cannot swallow the closing quote either.
    assert series_key("api", {"a": "x\\", "b": "y"}) != series_key("api", {"a": 'x",b="y'})


def test_series_key_of_plain_labels_is_unchanged() -> None:
    """Training bundles and existing Kafka partitions hold these keys: they must not move."""
    labels = {"host": "web-1.example.com", "az": "eu-west-1a", "path": "/api/v1?x=1&y={2}", "ü": "é ✓"}
    assert series_key("api.latency_p99", labels) == (
        'api.latency_p99{az="eu-west-1a",host="web-1.example.com",path="/api/v1?x=1&y={2}",ü="é ✓"}'
    )
    assert series_key("kpi-0efb375b", {}) == "kpi-0efb375b"


def test_decoded_point_has_the_escaped_key_of_its_message() -> None:
    key, value = metric_message("api", 1.0, labels={"host": 'a",zone="b'})
    record = decode(value)
    assert isinstance(record, MetricPoint)
    assert record.series_key == key.decode() == 'api{host="a\\",zone=\\"b"}'


# --- timestamps ----------------------------------------------------------------------------

T = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-22T10:00:00", T),  # no zone: UTC
        ("2026-11-22T10:00:00Z", T),
        ("2026-11-22T12:00:00+02:00", T),  # converted, not just labelled
        ("2026-11-22T05:00:00-05:00", T),
        ("2026-11-22", T.replace(hour=0)),  # a date: midnight UTC
        (int(T.timestamp()), T),  # Unix seconds
    ],
)
def test_timestamps_are_aware_utc(ts: object, expected: datetime) -> None:
    point = decode(json.dumps({"kind": "metric", "series": "s", "value": 1, "ts": ts}).encode())
    img = decode(image(ts=ts))
    for record in (point, img):
        assert isinstance(record, MetricPoint | ImageRecord)
        assert record.ts is not None and record.ts.utcoffset() == timedelta(0), record.ts
        assert record.ts == expected
        # What the worker writes into alerts and scores: an explicit UTC offset.
        assert (
            TypeAdapter(datetime).dump_json(record.ts)
            == json.dumps(expected.strftime("%Y-%m-%dT%H:%M:%SZ")).encode()
        )


@pytest.mark.parametrize(
    "ts",
    ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z",
     "2200-01-01T00:00:00Z", -1, 8e9],  # 8e9 s: year 2223 (pydantic reads numbers over 2e10 as ms)
)  # fmt: skip
def test_a_timestamp_outside_1970_to_2200_is_refused_with_its_own_reason(ts: object) -> None:
    for raw in (image(ts=ts), json.dumps({"kind": "metric", "series": "s", "value": 1, "ts": ts}).encode()):
        rej = rejection(raw)
        assert rej.reason is Reason.BAD_TIMESTAMP and "ts:" in rej.error
        assert "1970-01-01 .. 2200-01-01" in rej.error


def test_the_edges_of_the_timestamp_range() -> None:
    assert isinstance(decode(image(ts="1970-01-01T00:00:00Z")), ImageRecord)
    assert isinstance(decode(image(ts="2199-12-31T23:59:59Z")), ImageRecord)


# --- error messages a producer can act on -----------------------------------------------------

RULES = "standard base64 (RFC 4648"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("not*base64!", "'*' at position 3"),
        ("ab-_" * 196, "- or _"),  # URL-safe alphabet
        ("QUJD\nQUJD", "line breaks"),
        ("QUJD QUJD", "a space at position 4"),
        ("QUI", "not a multiple of 4"),  # padding left off
        ("QQ==QQ==", "= may appear only as padding at the end"),
        ("QUJDR", "one more than a multiple of 4"),
        ("AAAAé", "'é' at position 4"),  # not ASCII
    ],
)
def test_bad_base64_says_what_standard_base64_is(data: str, says: str) -> None:
    rej = rejection(image(data=data))
    assert rej.reason is Reason.BAD_BASE64
    assert RULES in rej.error and says in rej.error, rej.error
    assert "Incorrect padding" not in rej.error and "Only base64 data" not in rej.error


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"null", "null"),
        (b"42", "number"),
        (b"-1.5e3", "number"),
        (b'"image"', "string"),
        (b"[1, 2]", "array"),
        (b"true", "boolean"),
        (b"false", "boolean"),
    ],
)
def test_not_an_object_names_the_json_type(raw: bytes, name: str) -> None:
    rej = rejection(raw)
    assert rej.reason is Reason.NOT_AN_OBJECT
    assert f"message is a JSON {name}" in rej.error, rej.error
    for python_name in ("NoneType", "int", "float", "str", "list", "bool"):
        assert f"JSON {python_name}," not in rej.error


PYTHON_ADVICE = ("utf-8-sig", "sys.", "set_int_max_str_digits", "codec", "char ")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'\xef\xbb\xbf{"kind": "metric", "series": "a", "value": 1}', "UTF-8 byte-order mark"),
        (b'{"kind": "metric", "series": "a", "value": 1' + b"0" * 5000 + b"}", "too many digits"),
        (b'{"kind": "metric", "series": "a", "value": 1, "x": 1' + b"0" * 5000 + b"}", "too many digits"),
        (b"\xff\xfe{\x00}\x00", "UTF-16"),
        (b"\xe9t\xe9", "byte 0xe9 at offset 0 is not valid UTF-8"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"kind": "image", ', "cut short"),
        (b'{"kind": "metric"} {}', "one JSON object per message"),
        (b'{"kind": "metric",}', "trailing commas"),
        (b'{"series": "a\nb"}', "control character"),
        (b'{"series": "\\uZZZZ"}', "4 hex digits"),
        (b'{\x00"\x00}\x00', "UTF-16 or UTF-32"),
    ],
)
def test_invalid_json_says_what_a_producer_should_fix(raw: bytes, says: str) -> None:
    rej = rejection(raw)
    assert rej.reason is Reason.INVALID_JSON
    assert says in rej.error, rej.error
    for advice in PYTHON_ADVICE:
        assert advice not in rej.error, rej.error


def test_strict_parser_fallback_names_the_cause() -> None:
    """Messages json.loads takes but pydantic's parser refuses: the error says which rule they break."""
    deep = b'{"kind": "metric", "series": "a", "value": 1, "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    rej = rejection(deep)
    assert rej.reason is Reason.INVALID_JSON and "nested more than 200 levels" in rej.error, rej.error
    deeper = b'{"kind": "metric", "series": "a", "value": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    rej = rejection(deeper)
    assert rej.reason is Reason.INVALID_JSON and "nested more than 200 levels" in rej.error, rej.error
    surrogate = b'{"kind": "metric", "series": "a", "value": 1, "x": "\\ud800"}'
    rej = rejection(surrogate)
    assert rej.reason is Reason.INVALID_JSON and "lone surrogate" in rej.error, rej.error
    assert "strict parser" not in rej.error


def test_lone_surrogate_in_a_field_is_schema_with_a_plain_message() -> None:
    rej = rejection(b'{"kind": "metric", "series": "a\\udc00", "value": 1}')
    assert rej.reason is Reason.SCHEMA and rej.error.startswith("series: ") and "lone surrogate" in rej.error


def test_duplicate_keys_are_not_an_error_the_last_one_wins() -> None:
    """Both parsers take the last of duplicate keys, so duplicates never reach the fallback."""
    record = decode(b'{"kind": "metric", "series": "a", "value": "x", "value": 2}')
    assert isinstance(record, MetricPoint) and record.value == 2.0


def test_a_copied_or_pickled_image_record_still_has_its_pixels() -> None:
    import copy
    import pickle

    record = decode(image_message(np.arange(16, dtype=np.uint8).reshape(4, 4), id="x"))
    for other in (copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record))):
        assert other == record and np.array_equal(other.pixels, record.pixels)
