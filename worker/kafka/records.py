"""A leaner reader of kafka-python's record batches (record format v2, the only one Kafka 4 writes).

kafka-python hands each record through four layers of Python: a `DefaultRecord` built by
`_read_msg` (reading the batch's attributes again for every record), a generator that checks a CRC
v2 records do not have and sizes their headers, a `ConsumerRecord` built through the namedtuple's
Python `__new__`, and the consumer's iterators. This reads a whole batch at once into the same
`ConsumerRecord`s, with the same offsets, timestamps, keys, values, headers and sizes
(tests/test_worker_kafka_python_records.py holds the two readers to each other): about 6 us a
record of the loop thread's time on the bench's image records against 10-16, and the worker's
drain 7 % faster (docs/results.md#a-leaner-reader-of-kafka-pythons-record-batches).

Anything unusual in a batch (a length that does not add up, a header key that is not UTF-8, bytes
left over, a varint out of range, attributes longer than one byte) sends that batch back to
kafka-python's own reader, which reads it, or raises where and how the worker's handling of
unreadable records expects (worker/kafka/kafka_python.py, `unreadable_record`). Batches that are
compressed are unpacked as before (worker/kafka/unpack.py: the limits hold), transactions and
control batches are handled as kafka-python does, and a consumer with deserializers keeps
kafka-python's reader. A differential fuzz of about a million mutated batches against
kafka-python's reader found the attributes case, and two that differ only in a counter or an
error's message (a negative magic byte, an empty control batch), neither of which a broker sends.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator

import kafka
from kafka.consumer.fetcher import READ_COMMITTED, ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import decode_varint
from kafka.structs import TopicPartition

log = logging.getLogger(__name__)

_kafka_python_reader = Fetcher.PartitionRecords._unpack_records


def read_batches_whole() -> bool:
    """Make kafka-python's consumer read record batches with `_unpack_records` below (idempotent).
    Only on the kafka-python this was written against (2.3: the reader's parameters, the batch's
    slots); on another it keeps its own reader, with a warning, and this returns False."""
    params = list(inspect.signature(_kafka_python_reader).parameters)
    if params != ["self", "tp", "records", "key_deserializer", "value_deserializer"] or not {
        "_buffer", "_pos"
    } <= set(DefaultRecordBatch.__slots__):
        log.warning("kafka-python %s: its own record reader is kept (worker/kafka/records.py knows 2.3)",
                    kafka.__version__)  # fmt: skip
        return False
    Fetcher.PartitionRecords._unpack_records = _unpack_records
    return True


def batch_records(batch: DefaultRecordBatch, topic: str, partition: int, leader_epoch: int) -> list | None:
    """Every record of an (unpacked) data batch as kafka-python's `(ConsumerRecord, size)`, or None
    where the batch is not plain to read: kafka-python's reader then reads it from its start."""
    buf = batch._buffer
    view = memoryview(buf)  # a key or value is copied once, from here (a bytearray's slice copies too)
    try:
        return _read(batch, buf, view, topic, partition, leader_epoch)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    finally:
        view.release()  # the batch's bytearray may be resized again


def _read(batch: DefaultRecordBatch, buf: bytearray, view: memoryview, topic: str, partition: int,
          leader_epoch: int) -> list | None:  # fmt: skip
    pos, end = batch._pos, len(buf)
    base, ts_type, first_ts = batch.base_offset, batch.timestamp_type, batch.first_timestamp
    log_append_ts = batch.max_timestamp if ts_type == batch.LOG_APPEND_TIME else None
    new, record_type = tuple.__new__, ConsumerRecord  # the namedtuple's own __new__ is a Python call
    out = []
    for _ in range(batch.records_count):
        # Varints of one byte (most of a record's fields) read inline: a call costs more than the read
        if (b := buf[pos]) < 0x80:
            length, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            length, pos = decode_varint(buf, pos)
        start = pos
        if buf[pos] & 0x80:  # attributes (unused in v2) as a longer varint: kafka-python reads those
            return None
        pos += 1
        if (b := buf[pos]) < 0x80:
            ts_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            ts_delta, pos = decode_varint(buf, pos)
        if (b := buf[pos]) < 0x80:
            offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            offset_delta, pos = decode_varint(buf, pos)
        key, pos = _nullable_bytes(buf, view, pos)
        value, pos = _nullable_bytes(buf, view, pos)
        if buf[pos] == 0:
            headers, header_size, pos = [], -1, pos + 1
        else:
            headers, header_size, pos = _headers(buf, view, pos)
        if pos - start != length or pos > end:
            return None
        timestamp = log_append_ts if log_append_ts is not None else first_ts + ts_delta
        record = new(record_type, (
            topic, partition, leader_epoch, base + offset_delta, timestamp, ts_type, key, value, headers,
            None, len(key) if key is not None else -1, len(value) if value is not None else -1, header_size,
        ))  # fmt: skip
        out.append((record, length))
    return out if pos == end else None


def _nullable_bytes(buf: bytearray, view: memoryview, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buf, pos)
    if size < 0:
        return None, pos
    return bytes(view[pos : pos + size]), pos + size


def _headers(buf: bytearray, view: memoryview, pos: int) -> tuple[list, int, int]:
    count, pos = decode_varint(buf, pos)
    if count < 0:
        raise ValueError("a negative header count")
    headers, size = [], 0
    for _ in range(count):
        key_len, pos = decode_varint(buf, pos)
        if key_len < 0:
            raise ValueError("a negative header key size")
        key = bytes(view[pos : pos + key_len]).decode("utf-8")
        pos += key_len
        value, pos = _nullable_bytes(buf, view, pos)
        headers.append((key, value))
        size += len(key.encode("utf-8")) + (len(value) if value is not None else 0)
    return headers, (size if headers else -1), pos


def _unpack_records(
    self: Fetcher.PartitionRecords, tp: TopicPartition, records: MemoryRecords,
    key_deserializer: object, value_deserializer: object,
) -> Iterator[ConsumerRecord]:  # fmt: skip
    """kafka-python 2.3's `PartitionRecords._unpack_records`, reading each data batch whole."""
    if key_deserializer or value_deserializer:
        yield from _kafka_python_reader(self, tp, records, key_deserializer, value_deserializer)
        return
    batch = records.next_batch()
    last_batch = None
    while batch is not None:
        last_batch = batch
        if self.check_crcs and not batch.validate_crc():
            raise CorruptRecordError(f"Record batch for partition {self.topic_partition} at offset "
                                     f"{batch.base_offset} failed crc check")  # fmt: skip
        if batch.magic == 2:
            self.leader_epoch = batch.leader_epoch
            if self.isolation_level == READ_COMMITTED and batch.has_producer_id():
                self._consume_aborted_transactions_up_to(batch.last_offset)
                if self._contains_abort_marker(batch):
                    self.aborted_producer_ids.discard(batch.producer_id)
                elif self._is_batch_aborted(batch):
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                    continue
            if batch.is_control_batch:  # a transaction's marker: no record for the consumer
                self.next_fetch_offset = batch.next_offset
                batch = records.next_batch()
                continue
            batch._maybe_uncompress()  # within the unpack limits; raises as kafka-python's iteration would
            whole = batch_records(batch, tp.topic, tp.partition, self.leader_epoch)
        else:
            whole = None  # an older format (a topic written before Kafka 0.11)
        for record, size in whole if whole is not None else _read_one_by_one(self, tp, batch):
            self.records_read += 1
            self.bytes_read += size
            self.next_fetch_offset = record.offset + 1
            yield record
        batch = records.next_batch()
    if last_batch is not None and last_batch.magic == 2:
        # v2 keeps a batch's last offset even when compaction removed its last record: the next
        # fetch starts after the batch, not inside it
        self.next_fetch_offset = last_batch.next_offset
    self.drain()


def _read_one_by_one(
    self: Fetcher.PartitionRecords, tp: TopicPartition, batch: DefaultRecordBatch
) -> Iterator[tuple[ConsumerRecord, int]]:
    """kafka-python's own reading of a batch, record by record (it raises at a broken record)."""
    for record in batch:
        if self.check_crcs and not record.validate_crc():  # records of the older formats have their own
            raise CorruptRecordError(
                f"Record for partition {self.topic_partition} at offset {record.offset} failed crc check"
            )
        headers = record.headers
        header_size = sum(len(k.encode("utf-8")) + len(v or b"") for k, v in headers) if headers else -1
        key, value = record.key, record.value
        yield ConsumerRecord(
            tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp, record.timestamp_type,
            key, value, headers, record.checksum, len(key) if key is not None else -1,
            len(value) if value is not None else -1, header_size,
        ), record.size_in_bytes  # fmt: skip
