"""Stand-ins for the worker's unit tests: messages without a broker, clients that record or refuse,
a copy of the tiny bundle to damage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kafka.consumer.fetcher import ConsumerRecord

from schemas import MANIFEST_FILE
from schemas.manifest import MANIFEST_CHECKSUM_FILE, manifest_checksum_line
from worker.decode import decode_message
from worker.kinds import kinds_for
from worker.serving.registry import ModelRegistry
from worker.settings import WorkerSettings


def message(
    value: bytes, offset: int = 0, partition: int = 0, topic: str = "in", key: bytes | None = None
) -> ConsumerRecord:
    """A consumed message as kafka-python hands it out."""
    key_size = -1 if key is None else len(key)
    return ConsumerRecord(topic, partition, -1, offset, 0, 0, key, value, [], None, key_size, len(value), -1)


def decoded(raw: bytes, models: ModelRegistry, offset: int = 0, partition: int = 0):
    """What the decode stage makes of `raw` consumed at `offset` of partition `partition` of 'in'."""
    kinds = kinds_for(models, WorkerSettings(metrics_port=0))
    return decode_message(message(raw, offset, partition), models, kinds, 1 << 20)


def copy_bundle(tiny_bundle, tmp_path: Path) -> Path:
    """The tiny bundle copied to <tmp_path>/repo/tiny-vae/1 (the copy's folder)."""
    dest = tmp_path / "repo" / "tiny-vae" / "1"
    shutil.copytree(tiny_bundle.folder, dest)
    return dest


def rewrite_manifest(folder: Path, text: str) -> None:
    """Replace a bundle's manifest.json with `text` and re-sign it (manifest.sha256), as an edit that
    re-ran training's writer would: the worker then judges the content, not the checksum."""
    (folder / MANIFEST_FILE).write_text(text)
    (folder / MANIFEST_CHECKSUM_FILE).write_text(
        manifest_checksum_line((folder / MANIFEST_FILE).read_bytes())
    )


class RecordingSink:
    """A producer that keeps what it is sent: (topic, key, the value as JSON)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict]] = []
        self.complaint: str | None = None  # what the client last logged about sending

    def send(self, topic, key, value):
        self.sent.append((topic, key, json.loads(value)))

    def flush(self, timeout_s) -> None:
        pass

    def close(self, timeout_s) -> None:
        pass

    def last_error(self) -> str | None:
        return self.complaint


class RefusingSink(RecordingSink):
    """A producer that refuses every output."""

    def send(self, topic, key, value):
        raise RuntimeError("the producer refused the output")


class RevokingSource:
    """A client that hands out `messages` once and, like librdkafka, runs the revocation callback from
    close(); it keeps the offsets it is asked to commit."""

    def __init__(self, messages: list) -> None:
        self.messages, self.committed, self.revoke = messages, [], None

    def subscribe(self, topics, on_assigned, on_revoked) -> None:
        self.revoke = on_revoked
        on_assigned([("in", 0)])

    def poll(self, timeout_ms: int, max_records: int) -> list:
        got, self.messages = self.messages, []
        return got

    def commit(self, offsets, wait=True) -> None:
        self.committed.append(dict(offsets))

    def assignment(self):
        return {("in", 0)}

    def close(self) -> None:
        self.revoke([("in", 0)])


def flip_a_byte(folder: Path) -> None:
    """Corrupt a bundle's model.onnx by one byte (its sha256 no longer matches the manifest)."""
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
