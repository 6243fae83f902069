"""Bounded unpacking of compressed record batches for kafka-python (librdkafka unpacks on its own).

Fetch sizes bound only the bytes on the wire: 64 KiB of gzip can unpack to 64 MiB, and kafka-python
unpacks a whole batch at once, before the worker sees a record. So the batch reader here unpacks
each codec only up to a limit:

- a batch that unpacks to more than `--max-unpacked-bytes` is refused before it is all unpacked
  (`BatchTooLarge`): its records become dead letters, the partition goes on after it;
- one poll unpacks about that much at most: a batch that would take a poll past it is left for
  the next poll (`UnpackBudgetSpent`; the source seeks back to it), once the records already
  handed out are on their way.

So a poll holds at most about twice `--max-unpacked-bytes` of unpacked records, whatever arrives.
"""

from __future__ import annotations

import io
import threading
import zlib

from kafka import codec
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch

CHUNK = 1 << 20  # bytes unpacked per step: a bomb is stopped within one chunk of the limit


class BatchTooLarge(CorruptRecordError):
    """A compressed batch unpacks to more than the limit: its records cannot be read."""


class UnpackBudgetSpent(Exception):
    """This poll has unpacked its share: the batch waits for the next poll (nothing is lost)."""


class _Budget(threading.local):
    """Per thread: each worker polls its consumer on its own loop thread (tests run several)."""

    limit: int | None = None  # None: unbounded (a consumer that is not the worker's)
    spent: int = 0


_budget = _Budget()


def start_poll(limit: int) -> None:
    """Before each poll of the worker's consumer, on the thread that polls."""
    _budget.limit, _budget.spent = limit, 0


def unpack(codec_id: int, data: bytes | memoryview, limit: int) -> bytearray:
    """The batch's records, unpacked (a bytearray, which the batch reader keeps as it is);
    BatchTooLarge if they come to more than `limit` bytes."""
    if codec_id == DefaultRecordBatch.CODEC_GZIP:
        return _gzip(bytes(data), limit)
    if codec_id == DefaultRecordBatch.CODEC_ZSTD:
        return _read_limited(codec.zstd.ZstdDecompressor().stream_reader(
            io.BytesIO(bytes(data)), read_across_frames=True), limit)  # fmt: skip
    if codec_id == DefaultRecordBatch.CODEC_LZ4:
        return _lz4(bytes(data), limit)
    if codec_id == DefaultRecordBatch.CODEC_SNAPPY:
        size = snappy_size(bytes(data))
        if size > limit:
            raise _too_large(limit, detail=f"its header says {size} bytes")
        return bytearray(codec.snappy_decode(bytes(data)))
    raise CorruptRecordError(f"unknown compression codec {codec_id}")


def _too_large(limit: int, unpacked: bytearray | None = None, detail: str = "") -> BatchTooLarge:
    if unpacked is not None:
        # The error's traceback keeps the frames that raised it, and kafka-python keeps the error
        # for a while: without this each refused batch would hold its limit's worth of memory.
        unpacked.clear()
    more = f" ({detail})" if detail else ""
    return BatchTooLarge(
        f"a compressed record batch unpacks to more than {limit} bytes{more}: refused before unpacking "
        "it all (--max-unpacked-bytes)"
    )


def _gzip(data: bytes, limit: int) -> bytearray:
    out, rest = bytearray(), data
    while rest:  # a gzip stream may hold several members
        inflater, chunk = zlib.decompressobj(wbits=31), rest
        while not inflater.eof:
            piece = inflater.decompress(chunk, CHUNK)
            out += piece
            if len(out) > limit:
                raise _too_large(limit, out)
            chunk = inflater.unconsumed_tail
            if not chunk and not piece and not inflater.eof:
                raise CorruptRecordError("a gzip-compressed record batch ends before its gzip stream does")
        rest = inflater.unused_data
    return out


def _lz4(data: bytes, limit: int) -> bytearray:
    out, rest = bytearray(), data
    while rest:  # a batch may hold several frames
        inflater = codec.lz4.LZ4FrameDecompressor()
        out += inflater.decompress(rest, max_length=CHUNK)
        while not inflater.eof:
            if len(out) > limit:
                raise _too_large(limit, out)
            if inflater.needs_input:
                raise CorruptRecordError("an lz4-compressed record batch ends before its frame does")
            out += inflater.decompress(b"", max_length=CHUNK)
        if len(out) > limit:
            raise _too_large(limit, out)
        rest = inflater.unused_data
    return out


def _read_limited(reader: io.RawIOBase, limit: int) -> bytearray:
    out = bytearray()
    with reader:
        while block := reader.read(CHUNK):
            out += block
            if len(out) > limit:
                raise _too_large(limit, out)
    return out


def snappy_size(data: bytes) -> int:
    """Unpacked size of a snappy payload from its headers (raw snappy, or Kafka's xerial framing)."""
    if codec._detect_xerial_stream(data):
        total, pos = 0, 16
        while pos + 4 <= len(data):
            block = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            total += _varint(data[pos + 4 : pos + 4 + max(block, 0)])
            pos += 4 + max(block, 0)
        return total
    return _varint(data)


def _varint(data: bytes) -> int:
    value, shift = 0, 0
    for byte in data[:10]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    raise CorruptRecordError("a snappy-compressed record batch has no valid length header")


def _bounded_maybe_uncompress(self: DefaultRecordBatch) -> None:  # a method of the batch
    if not self._decompressed and self.compression_type != self.CODEC_NONE:
        limit, spent = _budget.limit, _budget.spent
        self._assert_has_codec(self.compression_type)
        data = memoryview(self._buffer)[self._pos :]
        unpacked = unpack(self.compression_type, data, limit if limit is not None else 1 << 62)
        if limit is not None:
            if spent and spent + len(unpacked) > limit:
                size = len(unpacked)
                del unpacked  # not kept alive by the error's traceback
                raise UnpackBudgetSpent(f"{spent + size} bytes unpacked in one poll")
            _budget.spent = spent + len(unpacked)
        self._buffer = unpacked
        self._pos = 0
    self._decompressed = True


def unpack_within_limits() -> None:
    """Make kafka-python's batch reader (record format v2, the only one Kafka 4 writes) unpack
    through `unpack`, counted against the budget of the thread that polls."""
    DefaultRecordBatch._maybe_uncompress = _bounded_maybe_uncompress
