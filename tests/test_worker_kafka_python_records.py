"""kafka-python's record reader, as the worker uses it (worker/kafka/kafka_python.py): header keys that
are not UTF-8 are read, and a broken record is located so that it (and the rest of its batch) can be
dead-lettered instead of stopping the partition."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from worker.kafka import records as records_module
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


# The worker's reader of whole batches (worker/kafka/records.py) against kafka-python's own, on the
# same bytes: the same records, sizes and positions, and the same failures where a batch is broken.

TP = TopicPartition("in", 0)
ATTRIBUTES = 21  # a v2 batch header's attributes (int16), the first byte its CRC covers
LOG_APPEND_TIME, TRANSACTIONAL, CONTROL = 0x08, 0x10, 0x20  # attribute bits


def built(records: list[tuple[bytes | None, bytes | None, list]], base: int = 0, codec: int = 0,
          timestamp_step: int = 1) -> bytearray:  # fmt: skip
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)  # fmt: skip
    for i, (key, value, headers) in enumerate(records):
        timestamp = 1_700_000_000_000 + i * timestamp_step
        builder.append(i, timestamp=timestamp, key=key, value=value, headers=headers)
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base)  # the broker's to set: outside the CRC
    return raw


def with_attributes(raw: bytearray, flags: int) -> bytearray:
    """The batch with more attribute bits set, and its CRC made good again."""
    raw[ATTRIBUTES + 1] |= flags
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[ATTRIBUTES:])))
    return raw


def compacted(raw: bytearray, removed: int) -> bytearray:
    """The batch as compaction leaves it when its last `removed` records went: v2 keeps the last offset."""
    last_delta = struct.unpack_from(">i", raw, 23)[0]
    struct.pack_into(">i", raw, 23, last_delta + removed)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[ATTRIBUTES:])))
    return raw


def partition_records(reader: Callable, raw: bytes, fetch_offset: int = 0, check_crcs: bool = True) -> object:
    """kafka-python's per-partition reader of a fetch, parsing with `reader`."""
    kind = type("Reader", (Fetcher.PartitionRecords,), {"_unpack_records": reader})
    return kind(fetch_offset, TP, MemoryRecords(bytes(raw)), check_crcs=check_crcs)


def read_with(reader: Callable, raw: bytes, fetch_offset: int = 0, take: int | None = None) -> tuple:
    """The records one take hands out, and where the reader stands after it."""
    part = partition_records(reader, raw, fetch_offset)
    got = part.take(take)
    return got, (part.next_fetch_offset, part.records_read, part.bytes_read, bool(part))


READERS = [records_module._kafka_python_reader, records_module._unpack_records]


def test_whole_batches_read_as_kafka_python_reads_them() -> None:
    varied = [(None, b"v", []), (b"k", None, []), (b"", b"", [("h", b"1"), ("\u00e9t\u00e9", None)]),
              *[(b"key-%d" % i, bytes(range(256)) * (i % 7), []) for i in range(150)]]  # fmt: skip
    raw = (
        built(varied, base=0, timestamp_step=70_000)
        + built([(b"z", b"zz" * 400, [])] * 90, base=len(varied), codec=DefaultRecordBatch.CODEC_GZIP)
        + with_attributes(built([(b"a", b"log append", [])] * 3, base=len(varied) + 90), LOG_APPEND_TIME)
        + built([(None, b"lz4" * 300, [])] * 5, base=len(varied) + 93, codec=DefaultRecordBatch.CODEC_LZ4)
    )
    theirs, ours = (read_with(reader, raw) for reader in READERS)
    assert len(ours[0]) == len(varied) + 98
    assert ours == theirs
    assert ours[0][-8].timestamp_type == 1 and ours[0][-8].timestamp != ours[0][-9].timestamp


def test_a_fetch_from_inside_a_batch_or_taken_in_part_ends_where_kafka_python_s_does() -> None:
    raw = built([(b"k%d" % i, b"v" * i, []) for i in range(20)])
    raw += compacted(built([(None, b"x", [])] * 4, base=20), 3)
    for options in ({}, {"fetch_offset": 7}, {"take": 5}, {"fetch_offset": 21, "take": 2}):
        theirs, ours = (read_with(reader, raw, **options) for reader in READERS)
        assert ours == theirs and ours[0]
    assert read_with(READERS[1], raw)[1][0] == 27  # after the compacted batch, not after its last record


def test_a_control_batch_is_passed_over_as_kafka_python_passes_it() -> None:
    marker = built([(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", [])], base=2)  # a commit marker
    control = with_attributes(marker, CONTROL | TRANSACTIONAL)
    raw = built([(b"a", b"1", [])] * 2) + control + built([(b"b", b"2", [])], base=3)
    theirs, ours = (read_with(reader, raw) for reader in READERS)
    assert ours == theirs and [r.offset for r in ours[0]] == [0, 1, 3]


def test_a_broken_record_is_read_up_to_and_located_by_kafka_python_s_reader() -> None:
    raw = built([(b"k%d" % i, b"v", []) for i in range(3)])
    raw[HEADER + 1 + raw[HEADER] // 2] += 2  # the second record claims one byte more than it has
    got = []
    for reader in READERS:
        part = partition_records(reader, raw, check_crcs=False)
        first = part.take()  # what came before the broken record; the error waits for the next take
        with pytest.raises(CorruptRecordError) as caught:
            part.take()
        tp, offset, *_, batch_end = unreadable_record(caught.value)
        got.append(([r.offset for r in first], tp, offset, batch_end))
    assert got[1] == got[0] == ([0], TP, 1, 3)


def test_a_header_key_that_is_not_utf8_is_read_leniently_by_both() -> None:
    read_header_keys_leniently()
    raw = built([(b"a", b"1", []), (b"b", b"2", [(NotUtf8("h"), b"v")]), (b"c", b"3", [])])
    theirs, ours = (read_with(reader, raw) for reader in READERS)
    assert ours == theirs and ours[0][1].headers == [("\ufffd\ufffd", b"v")]


def test_the_whole_batch_reader_is_installed_on_the_kafka_python_it_knows(monkeypatch) -> None:
    monkeypatch.setattr(Fetcher.PartitionRecords, "_unpack_records", records_module._kafka_python_reader)
    assert records_module.read_batches_whole()
    assert Fetcher.PartitionRecords._unpack_records is records_module._unpack_records


def test_another_kafka_python_keeps_its_own_reader(monkeypatch, caplog) -> None:
    def changed(self, tp, records, key_deserializer, value_deserializer, extra=None):
        yield from ()

    monkeypatch.setattr(records_module, "_kafka_python_reader", changed)
    monkeypatch.setattr(Fetcher.PartitionRecords, "_unpack_records", changed)
    assert not records_module.read_batches_whole()
    assert Fetcher.PartitionRecords._unpack_records is changed
    assert "its own record reader is kept" in caplog.text


@pytest.mark.parametrize(
    "batch_hex",
    [  # a record's attributes as a two-byte varint (0x80 0x00); found by a differential fuzz
        "000000000000000000000039000000050288b439d50000000000000000018bcfe568000000018bcfe5680a"
        "ffffffffffffffffffffffffffff000000010e80000002000100",  # another record if read as one byte
        "0000000000000000000000380000000502ebe56c3e0000000000000000018bcfe568000000018bcfe5680a"
        "ffffffffffffffffffffffffffff000000010c800000010100",  # kafka-python refuses it; valid CRC
    ],
)
def test_attributes_longer_than_one_byte_are_left_to_kafka_python(batch_hex: str) -> None:
    raw = bytes.fromhex(batch_hex)
    got = []
    for reader in READERS:
        part = partition_records(reader, raw)
        try:
            got.append(([tuple(r) for r in part.take()], part.next_fetch_offset))
        except CorruptRecordError as exc:
            got.append(("refused", unreadable_record(exc)[:2]))
    assert got[1] == got[0]
