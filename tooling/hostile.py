"""Hostile input for the worker: kinds of records a careless producer or an attacker may write, each
within the worker's limits or just past them, and a run that mixes them with valid records on a real
broker and accounts every input to exactly one outcome.

`python -m tooling.hostile` (`make fuzz`) runs it at length on both Kafka clients and prints a table;
tests/test_worker_fuzz_kafka.py runs a short one in `make test`.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import image_message
from tooling.kafka import create_topics, produce, producer

Hostile = tuple[bytes | None, bytes | None, list]  # key, value, headers


class NotUtf8(str):
    """A header key that kafka-python's producer writes as bytes that are not UTF-8."""

    def encode(self, *args: object, **kwargs: object) -> bytes:
        return b"\xff\xfe"


def _image(**fields: object) -> bytes:
    body = {"kind": "image", "shape": [28, 28], "dtype": "uint8", "data": _b64(bytes(784))}
    return json.dumps({**body, **fields}).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _floats(value: float) -> bytes:
    return _image(dtype="float32", shape=[2, 2], data=_b64(np.full(4, value, "<f4").tobytes()))


def _metric(**fields: object) -> bytes:
    return json.dumps({"kind": "metric", "series": "fuzz", "value": 1.0, **fields}).encode()


def _raw(value: bytes | None, key: bytes | None = None, headers: list | None = None) -> Hostile:
    return key, value, headers or []


# name -> a maker of one hostile record (rng for variety). Every one must cost only itself.
HOSTILE: dict[str, Callable[[random.Random], Hostile]] = {
    "tombstone": lambda r: _raw(None, key=b"deleted"),
    "empty": lambda r: _raw(b""),
    "not json": lambda r: _raw(b"{not json" + bytes(r.randrange(256) for _ in range(20))),
    "invalid utf-8": lambda r: _raw(b'{"kind": "image", "id": "\xff\xfe"}'),
    "bom": lambda r: _raw(b"\xef\xbb\xbf" + _image()),
    "utf-16": lambda r: _raw(_image().decode().encode("utf-16")),
    "array": lambda r: _raw(b"[1, 2, 3]"),
    "number": lambda r: _raw(b"42"),
    "deep nesting": lambda r: _raw(b"[" * 5000 + b"]" * 5000),
    "deep object": lambda r: _raw(b'{"a":' * 3000 + b"1" + b"}" * 3000),
    "5,000 digits": lambda r: _raw(_metric(value=0).replace(b"0}", b"1" + b"0" * 5000 + b"}")),
    "nan literal": lambda r: _raw(b'{"kind": "metric", "series": "s", "value": NaN}'),
    "infinity literal": lambda r: _raw(b'{"kind": "metric", "series": "s", "value": Infinity}'),
    "huge float": lambda r: _raw(b'{"kind": "metric", "series": "s", "value": 1e400}'),
    "unknown kind": lambda r: _raw(json.dumps({"kind": "video"}).encode()),
    "no kind": lambda r: _raw(json.dumps({"shape": [28, 28]}).encode()),
    "missing data": lambda r: _raw(b'{"kind": "image", "shape": [28, 28], "dtype": "uint8"}'),
    "bad base64": lambda r: _raw(_image(data="***")),
    "url-safe base64": lambda r: _raw(_image(data="-_" * 392)),
    "short pixels": lambda r: _raw(_image(data=_b64(bytes(100)))),
    "huge shape": lambda r: _raw(_image(shape=[65536, 65536, 65536, 65536])),
    "negative shape": lambda r: _raw(_image(shape=[-28, 28])),
    "five dims": lambda r: _raw(_image(shape=[1, 1, 1, 1, 784])),
    "float pixels 3.0": lambda r: _raw(_floats(3.0)),
    "float pixels nan": lambda r: _raw(_floats(np.nan)),
    "wrong model shape": lambda r: _raw(image_message(np.zeros((27, 27), np.uint8))),
    "unknown model": lambda r: _raw(_image(model="no-such-model")),
    "model version 0": lambda r: _raw(_image(model="tiny-vae:0")),
    "metric for an image model": lambda r: _raw(_metric()),
    "labels not strings": lambda r: _raw(_metric(labels={"a": 1})),
    "empty series": lambda r: _raw(_metric(series="")),
    "ts year 9999": lambda r: _raw(_image(ts="9999-12-31T23:59:59Z")),
    "ts before 1970": lambda r: _raw(_image(ts="1969-07-20T20:17:00Z")),
    "ts garbage": lambda r: _raw(_image(ts="yesterday")),
    "ts as ms": lambda r: _raw(_image(ts=1e18)),
    "id 600 KB": lambda r: _raw(_image(id="x" * 600_000)),
    "id not a string": lambda r: _raw(_image(id=[1, 2])),
    "key 600 KB": lambda r: _raw(b"{", key=b"k" * 600_000),
    "key 50 KB, body 700 KB": lambda r: _raw(_image(pad="x" * 700_000), key=b"q" * 50_000),
    "over the size limit": lambda r: _raw(_image(pad="x" * 1_100_000)),
    "header key not utf-8": lambda r: _raw(_image(id=f"hdr-{r.random()}"), headers=[(NotUtf8("h"), b"v")]),
    "many headers": lambda r: _raw(_image(id=f"h-{r.random()}"), headers=[(f"{i}", b"") for i in range(500)]),
    "duplicate fields": lambda r: _raw(b'{"kind": "image", "kind": "video"}'),
    "trailing garbage": lambda r: _raw(_image() + b" trailing"),
    "control characters": lambda r: _raw(b'{"kind": "image", "id": "\x00\x01\x02"}'),
    "lone surrogate": lambda r: _raw(b'{"kind": "image", "id": "\\ud800"}'),
}  # fmt: skip


@dataclass
class FuzzResult:
    sent: int
    outcomes: collections.Counter  # input index -> number of outcomes it had
    by_kind: dict[str, collections.Counter]  # hostile kind -> outcome (dead-letter reason or "scored")
    worker_alive: bool  # ran to the end, and stopped cleanly when told to
    peak_rss_mb: float
    refused_bombs: int = 0  # bombs the broker would not take (an input topic stored uncompressed)

    @property
    def missing(self) -> list[int]:
        return [i for i in range(self.sent) if self.outcomes[i] == 0]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.outcomes.values() if n > 1)


def stream(n: int, seed: int) -> tuple[list[Hostile], list[str]]:
    """`n` records, half valid images (ids `ok/i`), half hostile of every kind in turn, shuffled;
    and each one's kind ("valid" or the hostile kind's name)."""
    rng = random.Random(seed)
    names = list(HOSTILE)
    records, kinds = [], []
    for i in range(n):
        if i % 2:
            name = names[(i // 2) % len(names)]
            records.append(HOSTILE[name](rng))
            kinds.append(name)
        else:
            records.append(_raw(image_message(np.zeros((28, 28), np.uint8), id=f"ok/{i}")))
            kinds.append("valid")
    order = list(range(n))
    rng.shuffle(order)
    return [records[i] for i in order], [kinds[i] for i in order]


def produce_stream(bootstrap: str, topic: str, records: list[Hostile]) -> None:
    """Everything to partition 0, in order: an input's offset is its index."""
    keys, values, headers = (list(column) for column in zip(*records, strict=True))
    written = produce(bootstrap, topic, values, keys, headers=headers, partition=0,
                      max_request_size=4_000_000)  # fmt: skip
    offsets = [m.offset for m in written]
    if offsets != list(range(len(records))):
        raise RuntimeError("the input topic must be new and empty: offsets are the records' indexes")


def account(messages: list, kinds: list[str]) -> tuple[collections.Counter, dict[str, collections.Counter]]:
    """Outcomes per input offset (alerts, scores and dead letters), and per hostile kind."""
    outcomes: collections.Counter = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for m in messages:
        out = json.loads(m.value)
        offset = out["source"]["offset"]
        outcomes[offset] += 1
        by_kind[kinds[offset]][out.get("reason", "scored")] += 1
    return outcomes, by_kind


def run(bootstrap: str, repository: Path, n: int, transport: str, seed: int = 0, bombs: int = 0,
        timeout_s: float = 300, input_compression: str = "auto") -> FuzzResult:  # fmt: skip
    """Stream `n` records (then `bombs` gzip bombs) through a worker of its own process, and account
    for every one. `input_compression`: the input topic's compression.type ("uncompressed": the
    broker refuses every bomb, as its batch unpacks past max.message.bytes; "auto": what each client
    needs by default, uncompressed for confluent, which refuses other input topics unless told
    --unbounded-unpacking warn, which it is here for any other)."""
    from tooling.kafka import read_topic, wait_for
    from tooling.process import start_piped as start_worker_process
    from tooling.process import worker_settings

    if input_compression == "auto":
        input_compression = "uncompressed" if transport == "confluent" else "producer"
    run_id = uuid.uuid4().hex[:8]
    topics = {t: f"fuzz-{t}-{run_id}" for t in ("input", "alerts", "dead", "scores", "group")}
    _create(bootstrap, topics, input_compression)
    records, kinds = stream(n, seed)
    produce_stream(bootstrap, topics["input"], records)
    taken = produce_bombs(bootstrap, topics["input"], bombs, first_offset=len(records))
    kinds += taken
    total = len(kinds)

    def outputs() -> list:
        return [
            m for t in ("alerts", "scores", "dead") for m in read_topic(bootstrap, topics[t], quiet_s=0.3)
        ]

    unpacking = "refuse" if input_compression == "uncompressed" else "warn"  # warn: the operator's opt-in
    proc = start_worker_process(worker_settings(bootstrap, repository, topics, transport=transport,
                                                unbounded_unpacking=unpacking))  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or len(outputs()) >= total, timeout_s, every_s=2)
        alive = proc.poll() is None
        peak = peak_rss_mb(proc.pid)
        proc.terminate()
        proc.communicate(timeout=90)
    finally:
        proc.kill()
    outcomes, by_kind = account(outputs(), kinds)
    clean = alive and proc.returncode == 0
    return FuzzResult(total, outcomes, dict(by_kind), clean, peak, refused_bombs=bombs - len(taken))


BOMB = 64 << 20  # bytes unpacked; about 64 KiB on the wire with gzip


def produce_bombs(bootstrap: str, topic: str, count: int, first_offset: int) -> list[str]:
    """`count` records that gzip packs into 64 KiB and that unpack to 64 MiB, after the stream; the
    kinds of those the broker took (none, where the topic is stored uncompressed)."""
    from kafka.errors import MessageSizeTooLargeError

    if not count:
        return []
    sender = producer(bootstrap, compression_type="gzip", max_request_size=2 * BOMB, buffer_memory=3 * BOMB)
    bomb = b'{"kind": "image", "pad": "' + b"0" * BOMB + b'"}'
    taken = 0
    for _ in range(count):
        try:
            offset = sender.send(topic, value=bomb, partition=0).get(timeout=120).offset
        except MessageSizeTooLargeError:  # the broker unpacked it to store it, and it was too large
            continue
        if offset != first_offset + taken:
            raise RuntimeError("the input topic must be new: offsets are the records' indexes")
        taken += 1
    sender.close()
    return ["gzip bomb (64 MiB unpacked)"] * taken


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux: VmHWM), in MB; NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _create(bootstrap: str, topics: dict[str, str], input_compression: str = "producer") -> None:
    # The input takes records past the worker's own limit, so that limit is what refuses them.
    inputs = {"max.message.bytes": "4000000", "compression.type": input_compression}
    every = {topics[t]: 1 for t in ("input", "alerts", "dead", "scores")}
    create_topics(bootstrap, every, {topics["input"]: inputs})


def table(result: FuzzResult, transport: str) -> str:
    state = "running" if result.worker_alive else "STOPPED"
    lines = [f"{transport}: {result.sent:,} records, {len(HOSTILE)} hostile kinds; missing "
             f"{len(result.missing)}, duplicates {result.duplicates}, worker {state}, "
             f"peak RSS {result.peak_rss_mb:,.0f} MB"]  # fmt: skip
    if result.refused_bombs:
        lines[0] += f"; {result.refused_bombs} bomb(s) refused by the broker"
    for kind in sorted(result.by_kind, key=lambda k: (k != "valid", k)):
        outcomes = ", ".join(f"{o} {n}" for o, n in result.by_kind[kind].most_common())
        lines.append(f"  {kind:28s} {outcomes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tooling.hostile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--records", type=int, default=4000, help="records per Kafka client, half of them hostile")
    p.add_argument("--transports", default="kafka-python,confluent", help="comma-separated Kafka clients")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--bombs",
        type=int,
        default=12,
        help="gzip bombs (64 KiB on the wire, 64 MiB unpacked) after the stream",
    )
    p.add_argument(
        "--input-compression",
        default="auto",
        help="input topic compression.type (uncompressed: the broker refuses bombs; auto, the default: "
        "uncompressed for confluent, as it requires by default, producer for kafka-python; producer "
        "with confluent runs it with --unbounded-unpacking warn)",
    )
    p.add_argument("--model-repository", type=Path, default=None,
                   help="bundles to serve (default: a tiny bundle trained now, about a minute)")  # fmt: skip
    args = p.parse_args(argv)
    from tooling.broker import LocalKafka

    home = Path(tempfile.mkdtemp(prefix="fuzz-"))
    repository = args.model_repository or _train(home)
    broker = LocalKafka(home=home / "kafka").start()
    failed = False
    try:
        for transport in args.transports.split(","):
            t0 = time.monotonic()
            result = run(broker.bootstrap_servers, repository, args.records, transport, args.seed, args.bombs,
                         input_compression=args.input_compression)  # fmt: skip
            print(table(result, transport), f"\n  ({time.monotonic() - t0:.0f} s)\n", flush=True)
            failed |= bool(result.missing) or not result.worker_alive
    finally:
        broker.stop()
    return 1 if failed else 0


def _train(home: Path) -> Path:
    from training.images.pipeline import train_bundle
    from training.settings import ImageTrainSettings

    out = home / "models" / "tiny-vae" / "1"
    train_bundle(ImageTrainSettings(out=out, epochs=2, progress=False))
    return out.parent.parent


if __name__ == "__main__":
    sys.exit(main())
