"""Bounded unpacking of compressed record batches (worker/kafka/unpack.py), codec by codec."""

from __future__ import annotations

import gzip
import os

import lz4.frame
import pytest
import snappy
import zstandard
from kafka import codec
from kafka.record.default_records import DefaultRecordBatch as Batch

from worker.kafka.unpack import BatchTooLarge, snappy_size, unpack

PAYLOAD = os.urandom(100_000) + bytes(3_000_000)  # some noise, then a long run that packs small

PACKERS = {
    Batch.CODEC_GZIP: gzip.compress,
    Batch.CODEC_LZ4: lambda b: codec.lz4_encode(b),
    Batch.CODEC_ZSTD: lambda b: zstandard.ZstdCompressor().compress(b),
    Batch.CODEC_SNAPPY: lambda b: codec.snappy_encode(b),  # Kafka's xerial framing, as producers write it
}


@pytest.mark.parametrize("codec_id", sorted(PACKERS))
def test_a_batch_within_the_limit_unpacks_whole(codec_id: int) -> None:
    assert unpack(codec_id, PACKERS[codec_id](PAYLOAD), limit=len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("codec_id", sorted(PACKERS))
def test_a_batch_over_the_limit_is_refused_naming_the_setting(codec_id: int) -> None:
    with pytest.raises(BatchTooLarge, match="--max-unpacked-bytes"):
        unpack(codec_id, PACKERS[codec_id](PAYLOAD), limit=len(PAYLOAD) - 1)


def test_a_gzip_bomb_is_stopped_within_a_chunk_of_the_limit() -> None:
    bomb = gzip.compress(bytes(256 << 20))  # 256 MiB of zeros: about 250 KiB packed
    assert len(bomb) < 300_000
    with pytest.raises(BatchTooLarge):
        unpack(Batch.CODEC_GZIP, bomb, limit=1 << 20)


def test_several_gzip_members_and_lz4_frames_are_all_read() -> None:
    assert unpack(Batch.CODEC_GZIP, gzip.compress(b"ab") + gzip.compress(b"cd"), limit=10) == b"abcd"
    frames = lz4.frame.compress(b"ab") + lz4.frame.compress(b"cd")
    assert unpack(Batch.CODEC_LZ4, frames, limit=10) == b"abcd"


def test_a_truncated_gzip_batch_is_unreadable_not_empty() -> None:
    with pytest.raises(Exception, match="ends before"):
        unpack(Batch.CODEC_GZIP, gzip.compress(PAYLOAD)[:-5000], limit=len(PAYLOAD))


def test_snappy_size_reads_raw_and_framed_headers() -> None:
    assert snappy_size(snappy.compress(PAYLOAD)) == len(PAYLOAD)
    assert snappy_size(codec.snappy_encode(PAYLOAD)) == len(PAYLOAD)
