"""kafka-python's record reader, as the worker uses it (worker/kafka/kafka_python.py): header keys that
are not UTF-8 are read, and a broken record is located so that it (and the rest of its batch) can be
dead-lettered instead of stopping the partition."""

from __future__ import annotations

import pytest
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.structs import TopicPartition

from worker.kafka.kafka_python import read_header_keys_leniently, unreadable_record

HEADER = 61  # bytes of a v2 record batch's header


class NotUtf8(str):
    def encode(self, *args: object, **kwargs: object) -> bytes:
        return b"\xff\xfe"


def batch_bytes(records: list[tuple[bytes, list]]) -> bytearray:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)  # fmt: skip
    for i, (value, headers) in enumerate(records):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=value, headers=headers)
    return builder.build()


class PartitionReader:
    """Stands where kafka-python's PartitionRecords stands when it parses a fetch."""

    def __init__(self, raw: bytearray) -> None:
        self.topic_partition = TopicPartition("in", 0)
        self.next_fetch_offset = 0
        self.raw = raw

    def take(self) -> list:
        return list(DefaultRecordBatch(bytes(self.raw)))


def test_a_header_key_that_is_not_utf8_no_longer_stops_the_batch() -> None:
    read_header_keys_leniently()
    raw = batch_bytes([(b"a", []), (b"b", [(NotUtf8("h"), b"v")]), (b"c", [])])
    records = PartitionReader(raw).take()
    assert [r.value for r in records] == [b"a", b"b", b"c"]
    assert records[1].headers == [("\ufffd\ufffd", b"v")]


def test_a_broken_record_is_located_with_what_was_read_of_it_and_its_batch_end() -> None:
    raw = batch_bytes([(b"a", []), (b"b", []), (b"c", [])])
    first_length = raw[HEADER] // 2  # zigzag varint, one byte for records this small
    raw[HEADER + 1 + first_length] += 2  # the second record claims one byte more than it has
    with pytest.raises(CorruptRecordError) as caught:
        PartitionReader(raw).take()
    tp, offset, key, value, timestamp, batch_end = unreadable_record(caught.value)
    assert (tp, offset, batch_end) == (TopicPartition("in", 0), 1, 3)
    assert key == b"k1" and timestamp == 1_700_000_000_001 and value is not None


def test_an_error_without_a_record_reader_in_it_is_not_located() -> None:
    assert unreadable_record(CorruptRecordError("crc mismatch")) is None
