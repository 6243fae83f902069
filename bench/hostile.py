"""(i) The worker's peak memory under hostile input (the hostile-record suite, tooling/hostile.py):
the same mixed stream of valid and hostile records with no compression bombs, then with gzip
bombs (64 KiB on the wire, 64 MiB unpacked each) after it, per Kafka client. kafka-python unpacks
within --max-unpacked-bytes (worker/kafka/unpack.py): its peak stays within the one without bombs
plus twice that limit. librdkafka unpacks gzip batches whole: its peak grows with the bombs, unless
the input topic is stored uncompressed (compression.type=uncompressed), where the broker refuses
each bomb (its batch unpacks past max.message.bytes); that third run shows it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.figures import Figures
from tooling import hostile
from worker.settings import WorkerSettings


def run(bootstrap: str, bundle: Path, transports: list[str], records: int = 1000, bombs: int = 24,
        figures: Figures | None = None) -> Iterator[str]:  # fmt: skip
    """Lines of the table, as each run ends. `bundle`: an image bundle (served alone: the suite's
    accounting expects no metric model)."""
    repo = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    shutil.copytree(bundle, repo / bundle.parent.name / bundle.name)
    limit_mb = WorkerSettings().max_unpacked_bytes / 2**20
    figures = figures if figures is not None else Figures()
    yield (f"(i) peak RSS under hostile input: {records:,} records (half of them hostile, "
           f"{len(hostile.HOSTILE)} kinds), then {bombs} gzip bombs of 64 MiB; --max-unpacked-bytes "
           f"{limit_mb:.0f} MiB")  # fmt: skip
    try:
        for transport in transports:
            calm = hostile.run(bootstrap, repo, records, transport, bombs=0)
            bound = calm.peak_rss_mb + 2 * limit_mb
            figures.add(f"i {transport}", f"(i) peak RSS, hostile stream, {transport}", calm.peak_rss_mb,
                        "MB", higher_is_better=False)  # fmt: skip
            yield f"  {transport:<13} no bombs: {calm.peak_rss_mb:,.0f} MB; missing {len(calm.missing)}"
            stored = ["producer", "uncompressed"] if transport == "confluent" else ["producer"]
            for compression in stored:
                bombed = hostile.run(bootstrap, repo, records, transport, bombs=bombs,
                                     input_compression=compression)  # fmt: skip
                figures.add(f"i {transport} bombs {compression}",
                            f"(i) peak RSS, then bombs, {transport}, topic {compression}", bombed.peak_rss_mb,
                            "MB", higher_is_better=False)  # fmt: skip
                up = "running" if calm.worker_alive and bombed.worker_alive else "STOPPED"
                within = (f"within {bound:,.0f} MB (no bombs + 2 x the limit)" if bombed.peak_rss_mb <= bound
                          else "no bound: the client unpacks whole batches")  # fmt: skip
                refused = f", {bombed.refused_bombs} refused by the broker" if bombed.refused_bombs else ""
                yield (f"  {transport:<13} bombs, topic compression.type={compression}{refused}: "
                       f"{bombed.peak_rss_mb:,.0f} MB, {within}; missing {len(bombed.missing)}, "
                       f"worker {up}")  # fmt: skip
    finally:
        shutil.rmtree(repo, ignore_errors=True)
