"""schemas.encode: the same bytes as ever for valid input; a ValueError for what the worker would reject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from schemas import ImageRecord, MetricPoint, decode, image_message, metric_message

# --- valid input: the same bytes as before (the demo, the bench and other tests compare them) ---


def test_image_message_bytes_are_unchanged() -> None:
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert image_message(pixels, id="cam-7/1", ts="2026-11-22T10:00:00Z", source="cam-7", model="m:1") == (
        b'{"kind":"image","id":"cam-7/1","ts":"2026-11-22T10:00:00Z","source":"cam-7","model":"m:1",'
        b'"shape":[2,3],"dtype":"uint8","data":"AAECAwQF"}'
    )
    assert image_message(np.array([0.0, 0.5, 1.0], dtype=np.float32)) == (
        b'{"kind":"image","shape":[3],"dtype":"float32","data":"AAAAAAAAAD8AAIA/"}'
    )


def test_metric_message_bytes_are_unchanged() -> None:
    ts = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert metric_message("api.latency_p99", 123.4, labels={"host": "a", "az": "x"}, ts=ts, model="m") == (
        b'api.latency_p99{az="x",host="a"}',
        b'{"kind":"metric","series":"api.latency_p99","labels":{"host":"a","az":"x"},'
        b'"ts":"2026-11-22T10:00:00Z","model":"m","value":123.4}',
    )
    assert metric_message("q", 3) == (b"q", b'{"kind":"metric","series":"q","labels":{},"value":3.0}')
    # A zone-less datetime is written as it is (the decoder takes it as UTC).
    naive = metric_message("q", 1.0, ts=datetime(2026, 1, 2, 3, 4, 5))[1]
    assert b'"ts":"2026-01-02T03:04:05"' in naive
    offset = metric_message("q", 1.0, ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))))[
        1
    ]
    assert b'"ts":"2026-01-02T03:04:05+02:00"' in offset


def test_large_images_are_not_held_to_the_default_size_limit() -> None:
    """The size limit is the worker's setting, not the format's: the helper does not apply it."""
    raw = image_message(np.zeros((1100, 1100), np.uint8))
    assert len(raw) > 1_048_576
    assert isinstance(decode(raw, max_bytes=len(raw)), ImageRecord)


# --- input the worker would dead-letter: ValueError, saying what to fix ----------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_non_finite_metric_value_raises(value: float) -> None:
    with pytest.raises(ValueError, match="value must be a finite number"):
        metric_message("s", value)


def test_non_numeric_metric_value_raises() -> None:
    with pytest.raises(ValueError, match="value must be a number"):
        metric_message("s", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be a number"):
        metric_message("s", "fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "labels",
    [
        {"host": 1},
        {"host": None},
        {"host": ["a"]},
        {"host": np.int64(1)},  # not even JSON: still a ValueError, not a TypeError
        {"host": {"a", "b"}},
    ],
)
def test_labels_that_are_not_strings_raise(labels: dict) -> None:
    with pytest.raises(ValueError, match=r"metric_message: .*labels\.host"):
        metric_message("s", 1.0, labels=labels)


def test_a_lone_surrogate_in_a_label_raises() -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        metric_message("s", 1.0, labels={"host": "\ud800"})


@pytest.mark.parametrize("series", ["", "x" * 513])
def test_bad_series_name_raises(series: str) -> None:
    with pytest.raises(ValueError, match="series"):
        metric_message(series, 1.0)


@pytest.mark.parametrize("ts", ["yesterday", "2026-13-01T00:00:00Z", "22/11/2026 10:00", ""])
def test_unparseable_ts_raises(ts: str) -> None:
    with pytest.raises(ValueError, match="ts: "):
        metric_message("s", 1.0, ts=ts)
    with pytest.raises(ValueError, match="ts: "):
        image_message(np.zeros((2, 2), np.uint8), ts=ts)


def test_ts_outside_the_calendar_in_utc_raises() -> None:
    with pytest.raises(ValueError, match=r"ts: .*UTC"):
        metric_message("s", 1.0, ts=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


def test_float32_pixels_outside_unit_range_raise() -> None:
    with pytest.raises(ValueError, match=r"out_of_range.*\[0, 1\]"):
        image_message(np.full((4, 4), 3.0, np.float32))
    with pytest.raises(ValueError, match="out_of_range"):
        image_message(np.full((4, 4), -0.1, np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_float32_pixels_raise(bad: float) -> None:
    pixels = np.zeros((4, 4), np.float32)
    pixels[1, 2] = bad
    with pytest.raises(ValueError, match=r"non_finite.*NaN or infinity"):
        image_message(pixels)


@pytest.mark.parametrize("shape", [(0, 28), (1, 1, 1, 1, 1), (70000, 1)])
def test_shapes_the_decoder_refuses_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        image_message(np.zeros(shape, np.uint8))


def test_non_string_id_source_or_model_raise() -> None:
    pixels = np.zeros((2, 2), np.uint8)
    for field in ("id", "source", "model"):
        with pytest.raises(ValueError, match=f"image_message: .*{field}"):
            image_message(pixels, **{field: 7})  # type: ignore[arg-type]


def test_unsupported_pixel_dtype_still_raises() -> None:
    with pytest.raises(ValueError, match="uint8 or float32"):
        image_message(np.zeros((2, 2), np.float64))


def test_what_the_helpers_return_decodes() -> None:
    record = decode(image_message(np.full((3, 3), 0.25, np.float32), ts="2026-11-22T12:00:00+02:00"))
    assert isinstance(record, ImageRecord) and record.ts == datetime(2026, 11, 22, 10, tzinfo=UTC)
    key, value = metric_message("cpu", 0.5, labels={"host": 'a"b'})
    point = decode(value)
    assert isinstance(point, MetricPoint) and point.series_key == key.decode()


def test_values_json_cannot_hold_raise_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"image_message: id: .*id must be a str"):
        image_message(np.zeros((2, 2), np.uint8), id=b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"metric_message: ts: .*datetime or an RFC 3339 str"):
        metric_message("s", 1.0, ts=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"metric_message: labels\.a: .*str names to str values"):
        metric_message("s", 1.0, labels={"a": b"x"})  # type: ignore[dict-item]
