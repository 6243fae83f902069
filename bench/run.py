"""`make bench`: throughput and latency of each stage, measured in one run on a real broker.

  (a) bare kafka-python consume rate of the input topic
  (b) onnxruntime scoring rate alone, at the worker's batch size
  (c) the worker's drain rate (alerts only), as its own process
  (d) the same worker with --max-batch 1
  (c-eos) (c) with --processing-guarantee exactly-once (confluent only), beside (c) at least once
  (c5) (c) on a realistic stream, 5% anomalies, and (c5-nox) the same with --no-explain (alerts without
       anomaly maps): 1 - (c5) / (c5-nox) is what the maps cost
  (e) produce-to-output latency at a steady rate on a realistic stream (bench/latency.py)
  (f)-(h) the metric path: memory per series, windows/s with 10,000 series, point latency (bench/kpi.py)
  (i) peak memory under hostile input and compression bombs, per Kafka client (bench/hostile.py)

Prints a table, then each figure beside the last committed one (bench/baseline.json, marking a drop
of more than 15 %); asserts nothing (figures, not tests). --save-baseline makes this run's figures the
committed ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from kafka import TopicPartition

from bench import figures as committed
from bench import hostile, kpi, plots
from bench.common import REPO, append_times, cpu_seconds, cpus, start_worker
from bench.latency import latency, percentiles, stage_line
from bench.machine import python_speed
from schemas import MANIFEST_FILE, ModelManifest, image_message
from schemas.repository import latest_bundle_folder
from tooling.broker import LocalKafka, free_port_block
from tooling.kafka import STORED_PLAIN, consumer, create_topic, produce
from tooling.process import metric_total
from training.images.mnist import load_split
from worker.score import score_batch
from worker.serving.device import choose_providers
from worker.serving.registry import load_bundle
from worker.settings import WorkerSettings

MAX_RECORDS = 21_014  # every MNIST 1 and 4 (14,701) and every 5 (6,313), test and train sets


def mnist_messages(n: int) -> tuple[list[bytes], float]:
    """`n` MNIST records, shuffled: 1s and 4s (normal) and at least a quarter 5s (anomalies); and their share.

    n = 20,000 (the default) is every 1 and 4 topped up with 5s, as in the figures the README gives.
    """
    if not 1 <= n <= MAX_RECORDS:
        raise ValueError(f"--records must be between 1 and {MAX_RECORDS:,} (the 1s, 4s and 5s of MNIST)")
    test, train = load_split("test"), load_split("train")
    images = np.concatenate([test.images, train.images])
    labels = np.concatenate([test.labels, train.labels])
    n_fives = max(n - int(np.isin(labels, (1, 4)).sum()), round(0.25 * n))
    normal = np.flatnonzero(np.isin(labels, (1, 4)))[: n - n_fives]
    fives = np.flatnonzero(labels == 5)[:n_fives]
    idx = np.random.default_rng(0).permutation(np.concatenate([normal, fives]))
    share = float(np.isin(idx, fives).mean())
    return [image_message(images[i], id=f"bench/{k}") for k, i in enumerate(idx)], share


def realistic_messages(n: int, share: float = 0.05) -> list[bytes]:
    """`n` MNIST 1s and 4s with `share` of them 5s, shuffled: the stream the latency bench sends."""
    test = load_split("test")
    normal = np.flatnonzero(np.isin(test.labels, (1, 4)))
    fives = np.flatnonzero(test.labels == 5)
    n_fives = round(share * n)
    idx = np.concatenate([np.resize(normal, n - n_fives), np.resize(fives, n_fives)])
    idx = np.random.default_rng(1).permutation(idx)
    return [image_message(test.images[i], id=f"bench5/{k}") for k, i in enumerate(idx)]


def produce_all(bootstrap: str, topic: str, messages: list[bytes]) -> float:
    t0 = time.perf_counter()
    produce(bootstrap, topic, messages, batch_size=256 * 1024)
    return len(messages) / (time.perf_counter() - t0)


def bare_consume_rate(bootstrap: str, topic: str, n: int, transport: str = "kafka-python") -> float:
    """Messages/s read by the client alone (no decoding), from the start of the topic."""
    if transport == "confluent":
        from confluent_kafka import Consumer

        client = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "fetch.max.bytes": 16 << 20, "max.partition.fetch.bytes": 4 << 20})  # fmt: skip
        client.subscribe([topic])
        got = 0
        while got == 0:
            got += len(client.consume(num_messages=2000, timeout=1.0))
        t0 = time.perf_counter()
        start = got
        while got < n:
            got += len(client.consume(num_messages=2000, timeout=1.0))
        rate = (got - start) / (time.perf_counter() - t0)
        client.close()
        return rate
    reader = consumer(bootstrap, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                      receive_message_max_bytes=80 << 20)  # fmt: skip
    parts = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
    reader.assign(parts)
    reader.seek_to_beginning()
    got, t0 = 0, time.perf_counter()
    deadline = time.monotonic() + 300
    while got < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"read {got} of {n} records in 300 s: is the topic complete?")
        for batch in reader.poll(timeout_ms=500, max_records=5000).values():
            got += len(batch)
    rate = got / (time.perf_counter() - t0)
    reader.close()
    return rate


def scoring_rate(bundle: Path, messages: list[bytes], max_batch: int, threads: int) -> float:
    from schemas import decode

    model = load_bundle(bundle, choose_providers("auto"), threads)
    x = np.stack([decode(m).pixels for m in messages])
    score_batch(model, x[:max_batch], max_batch)  # warm
    t0 = time.perf_counter()
    score_batch(model, x, max_batch)
    return len(x) / (time.perf_counter() - t0)


def worker_drain_rate(bootstrap: str, repo: Path, topic: str, n: int, cpu: CpuPerRecord | None = None,
                      scoring_us: list[float] | None = None, **extra: object) -> float:  # fmt: skip
    """Records/s while the worker drains a full topic, from the broker's append times of its alerts.

    The records are shuffled, so alerts are spread evenly through the drain: the rate is
    n x (alerts - 1) / alerts over the time from the first alert to the last. /metrics is read
    only twice a second, to know when the worker is done: scraping it often costs the worker
    GIL time and would slow what is measured. `cpu`, if given, is told the CPU time the worker
    process and the broker spent per record, from the first record consumed until all are scored
    (up to half a second of the idle worker after the last one counts too). `scoring_us`, if given,
    is told the wall time per record of the scoring thread's calls (the worker's
    anomaly_worker_inference_seconds, read once at the end), to hold against onnxruntime alone.
    """
    port = free_port_block(1)
    alerts = create_topic(bootstrap, f"bench-alerts-{uuid.uuid4().hex[:8]}", 1,
                          {"message.timestamp.type": "LogAppendTime"})  # fmt: skip
    proc = start_worker(bootstrap, repo, topic, alerts, port, **extra)
    deadline = time.monotonic() + 600
    try:
        while metric_total(port, "anomaly_worker_records_consumed_total") == 0 and proc.poll() is None:
            time.sleep(0.05)  # until the drain starts (the worker's start-up is not counted)
        cpu0 = cpu_seconds([proc.pid]), cpu_seconds(cpu.broker_pids if cpu else [])
        while (scored := metric_total(port, "anomaly_worker_records_scored_total")) < n:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker scored {scored:.0f} of {n} records in 600 s")
            time.sleep(0.5)
        if cpu is not None:
            cpu.add(cpu_seconds([proc.pid]) - cpu0[0], cpu_seconds(cpu.broker_pids) - cpu0[1], n)
        scoring_s = metric_total(port, "anomaly_worker_inference_seconds_sum")
    finally:
        proc.terminate()
        proc.wait(60)
    stamps = append_times(bootstrap, alerts)
    if len(stamps) < 2 or stamps[-1] == stamps[0]:
        raise RuntimeError(f"{len(stamps)} alerts: too few to time the drain (use more --records)")
    rate = n * (len(stamps) - 1) / len(stamps) / ((stamps[-1] - stamps[0]) / 1000.0)
    if scoring_us is not None:
        scoring_us.append(scoring_s / n * 1e6)
    return rate


@dataclass
class CpuPerRecord:
    """CPU time per record of the worker process and of the broker, over drains (median of each)."""

    broker_pids: list[int]
    worker_us: list[float] = field(default_factory=list)
    broker_us: list[float] = field(default_factory=list)

    def add(self, worker_s: float, broker_s: float, records: int) -> None:
        self.worker_us.append(worker_s / records * 1e6)
        self.broker_us.append(broker_s / records * 1e6)

    def bound(self, cores: int) -> float:
        """Records/s the cores would allow at these CPU times, with nothing else running."""
        return cores * 1e6 / (np.median(self.worker_us) + np.median(self.broker_us))


def latest_bundle(repository: Path, name: str, kind: str) -> Path | None:
    """The latest version of model `name` (schemas.repository's rule, the worker's), if it scores `kind`."""
    folder = latest_bundle_folder(repository, name)
    if folder is None:
        return None
    manifest = ModelManifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
    return folder if manifest.kind == kind else None


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        choices=["images", "metrics", "latency", "exactly-once", "hostile"],
        help="run one half, or the latency stage (e) alone, or (c) and (c-eos) alone (confluent), "
        "--repeats times each, or the memory stage (i) alone (default: all)",
    )
    p.add_argument("--partitions", type=int, default=3, help="input partitions of the latency stream (e)")
    p.add_argument("--anomaly-share", type=float, default=0.05, help="share of 5s in the latency stream (e)")
    p.add_argument("--records", type=int, default=20_000,
                   help=f"MNIST records in the input topic (at most {MAX_RECORDS:,})")  # fmt: skip
    p.add_argument("--batch1-records", type=int, default=5_000, help="records for the --max-batch 1 run")
    p.add_argument("--realistic-records", type=int, default=60_000,
                   help="records of the 5%% stream drained in (c5) and (c5-nox): a drain of a few seconds, "
                        "so that its first and last batches weigh little")  # fmt: skip
    p.add_argument("--max-batch", type=int, default=256, help="the worker's --max-batch")
    p.add_argument("--model-repository", type=Path, default=REPO / "models", help="bundles to serve")
    p.add_argument("--image-model", default="mnist-vae", help="image model: its latest version is served")
    p.add_argument("--metric-model", default="kpi-vae", help="metric model: its latest version is served")
    p.add_argument("--rate", type=float, default=1000.0, help="records (points) per s for the latency runs")
    p.add_argument("--seconds", type=float, default=15.0, help="length of the latency runs")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each rate stage; the table gives their median")  # fmt: skip
    p.add_argument("--transports", default="kafka-python,confluent",
                   help="worker Kafka clients to measure, comma-separated")  # fmt: skip
    p.add_argument("--series", type=int, default=10_000, help="active metric series")
    p.add_argument("--scored-steps", type=int, default=5, help="points per series scored in (g)")
    p.add_argument("--plots", type=Path, default=REPO / ".bench",
                   help="folder for the throughput and latency figures")  # fmt: skip
    p.add_argument("--save-baseline", action="store_true",
                   help=f"write this run's figures into {committed.BASELINE.relative_to(REPO)}, the figures "
                        "later runs are compared with (commit it with the code it measured)")  # fmt: skip
    args = p.parse_args()
    if not 1_000 <= args.records <= MAX_RECORDS:
        p.error(f"--records must be between 1,000 and {MAX_RECORDS:,} (the 1s, 4s and 5s of MNIST)")
    if not 100 <= args.batch1_records <= args.records:
        p.error("--batch1-records must be between 100 and --records")
    if args.realistic_records < 1_000:
        p.error("--realistic-records must be at least 1,000")

    repo = args.model_repository
    image_bundle = latest_bundle(repo, args.image_model, "image") if args.only != "metrics" else None
    with_hostile = args.only in (None, "hostile")
    with_metrics = args.only in (None, "metrics")
    metric_bundle = latest_bundle(repo, args.metric_model, "metric") if with_metrics else None
    for kind, name, bundle, wanted in (("image", args.image_model, image_bundle, "images"),
                                       ("metric", args.metric_model, metric_bundle, "metrics")):  # fmt: skip
        alone = ("latency", "exactly-once", "hostile") if kind == "image" else ()  # need this bundle alone
        if bundle is None and args.only in (None, wanted, *alone):
            make = "make train" if kind == "image" else "make train-kpi"
            print(f"bench: no {kind} bundle {repo / name}/<version>; run '{make}' first", file=sys.stderr)
            return 1
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    speed = python_speed()  # before the broker starts: the machine as quiet as it will be
    print(f"this machine runs Python at {speed:.2f} M steps/s (bench/machine.py): figures are marked against "
          "committed ones of a machine of similar speed", flush=True)  # fmt: skip
    args.figures = committed.Figures(speed)
    # A throwaway broker: its logs hold every record produced (~300 MB a run), so its folder goes at the end.
    broker = None if external else LocalKafka(home=Path(tempfile.mkdtemp(prefix="bench-kafka-")))
    try:
        bootstrap = external or broker.start().bootstrap_servers
        args.broker_pids = broker.pids() if broker else []  # an external broker's CPU is not known
        if args.only == "latency":
            latency_bench(bootstrap, image_bundle, args)
        elif args.only == "exactly-once":
            exactly_once_bench(bootstrap, image_bundle, args)
        elif image_bundle is not None and args.only != "hostile":
            image_bench(bootstrap, image_bundle, args)
        if metric_bundle is not None:
            print()
            for line in kpi.run(bootstrap, args.model_repository, metric_bundle, args.series,
                                args.scored_steps, args.rate, args.seconds, args.figures):  # fmt: skip
                print(line, flush=True)
        if with_hostile and image_bundle is not None:
            print()
            transports = args.transports.split(",")
            for line in hostile.run(bootstrap, image_bundle, transports, figures=args.figures):
                print(line, flush=True)
    finally:
        if broker is not None:
            broker.stop()  # also after a failed start: a node that did come up is stopped
            shutil.rmtree(broker.home, ignore_errors=True)
    print()
    for line in args.figures.compared(committed.load()):
        print(line)
    if args.save_baseline:
        print(f"\nthis run's figures saved as the baseline: {args.figures.save()}")
    return 0


def latency_bench(bootstrap: str, bundle: Path, args: argparse.Namespace) -> None:
    """(e) alone, --repeats runs per transport, each run's distribution and the spread of its p99."""
    model = f"{bundle.parent.name}:{bundle.name}"
    print(f"broker {bootstrap}; model {bundle}; (e) {args.rate:.0f} records/s for {args.seconds:.0f} s, "
          f"{args.partitions} input partitions, {args.anomaly_share:.0%} anomalies, every record an output\n",
          flush=True)  # fmt: skip
    for transport in args.transports.split(","):
        p99s, stage_runs = [], []
        for run in range(args.repeats):
            measured = latency(bootstrap, args.model_repository, args.rate, args.seconds, model, transport,
                               args.partitions, args.anomaly_share)  # fmt: skip
            p99s.append(float(np.percentile(measured.ms, 99)))
            stage_runs.append(measured.stages)
            print(f"{transport} run {run + 1}: {percentiles(measured.ms)}\n  stages: "
                  f"{stage_line(measured.stages)}", flush=True)  # fmt: skip
        args.figures.add(f"e p99 {transport}", f"(e) produce -> output p99, {transport}",
                         float(np.median(p99s)), "ms", higher_is_better=False)  # fmt: skip
        stage_p99s(args.figures, transport, {s: (0.0, float(np.median([r[s][1] for r in stage_runs])))
                                             for s in stage_runs[0]})  # fmt: skip
        print(
            f"{transport}: p99 median {np.median(p99s):.0f} ms, {min(p99s):.0f} - {max(p99s):.0f}\n",
            flush=True,
        )


def exactly_once_bench(bootstrap: str, bundle: Path, args: argparse.Namespace) -> None:
    """(c) with confluent, at least once and exactly once, alternating, --repeats runs of each."""
    messages, share = mnist_messages(args.records)
    topic = create_topic(bootstrap, f"bench-images-{uuid.uuid4().hex[:8]}", 2, STORED_PLAIN)
    produce_all(bootstrap, topic, messages)
    model = f"{bundle.parent.name}:{bundle.name}"
    print(f"broker {bootstrap}; model {bundle}; {len(messages)} MNIST records ({share:.0%} anomalies), "
          f"2 partitions; (c) worker drain, alerts only, --max-batch {args.max_batch}, confluent\n",
          flush=True)  # fmt: skip
    runs: dict[str, list[float]] = {"at-least-once": [], "exactly-once": []}
    for run in range(args.repeats):
        for guarantee in runs:
            rate = worker_drain_rate(bootstrap, args.model_repository, topic, args.records,
                                     max_batch=args.max_batch, default_model=model, transport="confluent",
                                     processing_guarantee=guarantee)  # fmt: skip
            runs[guarantee].append(rate)
            print(f"run {run + 1}, {guarantee}: {rate:,.0f} records/s", flush=True)
    keys = {"at-least-once": "c confluent", "exactly-once": "c-eos"}
    for guarantee, rates in runs.items():
        rates.sort()
        args.figures.add(keys[guarantee], f"(c) worker drain, confluent, {guarantee}",
                         float(np.median(rates)), "records/s")  # fmt: skip
        print(f"{guarantee}: median {np.median(rates):,.0f} records/s ({rates[0]:,.0f} - {rates[-1]:,.0f})")


def stage_p99s(figures: committed.Figures, transport: str, stages: dict[str, tuple[float, float]]) -> None:
    for stage, (_, p99) in stages.items():
        figures.add(f"e {stage} p99 {transport}", f"(e) p99 of the {stage} stage, {transport}", p99, "ms",
                    higher_is_better=False)  # fmt: skip


def cpu_line(transport: str, cpu: CpuPerRecord, drained: float, args: argparse.Namespace,
             stage: str = "c") -> str:  # fmt: skip
    """A drain's CPU per record, and the drain rate the machine's cores would allow at it."""
    worker = float(np.median(cpu.worker_us))
    args.figures.add(f"{stage} cpu {transport}", f"({stage}) worker process CPU per record, {transport}",
                     worker, "us", higher_is_better=False)  # fmt: skip
    if not cpu.broker_pids:
        return f"({stage}) CPU per record: worker process {worker:.0f} us (the broker's is not known here)"
    broker, bound = float(np.median(cpu.broker_us)), cpu.bound(cpus())
    return (f"({stage}) CPU per record: worker process {worker:.0f} us, broker {broker:.0f} us; at these the "
            f"{cpus()} CPUs allow at most {bound:,.0f} records/s, and ({stage}) drained at "
            f"{drained / bound:.0%} of that")  # fmt: skip


def scoring_line(scoring_us: float, drained: float, alone: float) -> str:
    """(c5) / (b) as its two factors: how long the scoring calls took a record in the worker against
    onnxruntime alone, and how much of the drain they kept the scoring thread busy (about: the drain
    is timed by its alerts, the scoring calls over every record)."""
    return (f"(c5): the scoring calls took {scoring_us:.0f} us a record in the worker against "
            f"{1e6 / alone:.0f} alone ((b)), and kept the scoring thread busy about "
            f"{scoring_us * drained / 1e6:.0%} of the drain")  # fmt: skip


def image_bench(bootstrap: str, bundle: Path, args: argparse.Namespace) -> None:
    messages, share = mnist_messages(args.records)
    print(
        f"broker {bootstrap}; model {bundle}; {len(messages)} MNIST records (1s and 4s, and "
        f"{share:.0%} 5s: anomalies); input topic of 2 partitions\n",
        flush=True,
    )
    topic = create_topic(bootstrap, f"bench-images-{uuid.uuid4().hex[:8]}", 2, STORED_PLAIN)
    produced = produce_all(bootstrap, topic, messages)
    print(f"produce (kafka-python, acks=all): {produced:,.0f} records/s\n")
    threads = WorkerSettings().intra_op_threads
    spread: dict[str, list[float]] = {}

    def median_of(stage: str, run) -> float:
        spread[stage] = sorted(run() for _ in range(args.repeats))
        return float(np.median(spread[stage]))

    b = median_of("b", lambda: scoring_rate(bundle, messages, args.max_batch, threads))
    median_of("b'", lambda: scoring_rate(bundle, messages, args.max_batch, 0))
    b_one = median_of("b1", lambda: scoring_rate(bundle, messages[:3000], 1, threads))
    realistic = create_topic(bootstrap, f"bench-images-5pct-{uuid.uuid4().hex[:8]}", 2, STORED_PLAIN)
    produce_all(bootstrap, realistic, realistic_messages(args.realistic_records))
    small = create_topic(bootstrap, f"bench-images-b1-{uuid.uuid4().hex[:8]}", 2, STORED_PLAIN)
    produce_all(bootstrap, small, messages[: args.batch1_records])
    model = f"{bundle.parent.name}:{bundle.name}"
    repo = args.model_repository
    results, latencies, cpu, cpu5, scoring5 = {}, {}, {}, {}, {}
    for transport in args.transports.split(","):
        a = median_of(f"a {transport}", partial(bare_consume_rate, bootstrap, topic, args.records, transport))
        cpu[transport] = CpuPerRecord(args.broker_pids)
        c = median_of(f"c {transport}", partial(
            worker_drain_rate, bootstrap, repo, topic, args.records, cpu=cpu[transport],
            max_batch=args.max_batch, default_model=model, transport=transport))  # fmt: skip
        cpu5[transport], scoring5[transport] = CpuPerRecord(args.broker_pids), []
        for explain in (True, False):
            median_of(f"c5{'' if explain else '-nox'} {transport}", partial(
                worker_drain_rate, bootstrap, repo, realistic, args.realistic_records,
                max_batch=args.max_batch, default_model=model, transport=transport, explain=explain,
                **({"cpu": cpu5[transport], "scoring_us": scoring5[transport]} if explain else {}),
            ))  # fmt: skip
        if transport == "confluent":  # exactly-once needs it
            median_of("c-eos", partial(
                worker_drain_rate, bootstrap, repo, topic, args.records, max_batch=args.max_batch,
                default_model=model, transport=transport, processing_guarantee="exactly-once"))  # fmt: skip
        d = median_of(f"d {transport}", partial(
            worker_drain_rate, bootstrap, repo, small, args.batch1_records, max_batch=1,
            default_model=model, transport=transport))  # fmt: skip
        measured = latency(bootstrap, repo, args.rate, args.seconds, model, transport, args.partitions,
                           args.anomaly_share)  # fmt: skip
        lat = latencies[transport] = measured.ms
        stage_p99s(args.figures, transport, measured.stages)
        print(f"(e) {transport}, stages inside the worker: {stage_line(measured.stages)}", flush=True)
        results[transport] = (a, c, d, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), len(lat))
    rows = [(f"(b) onnxruntime alone, batch {args.max_batch}, {threads} thread(s) as the worker", "b"),
            (f"(b') onnxruntime alone, batch {args.max_batch}, all cores", "b'"),
            (f"(b1) onnxruntime alone, batch 1, {threads} thread(s)", "b1")]  # fmt: skip
    for transport in results:
        rows += [(f"(a) bare consume, {transport}", f"a {transport}"),
                 (f"(c) worker drain, alerts only, --max-batch {args.max_batch}, {transport}",
                  f"c {transport}"),
                 (f"(d) worker drain, --max-batch 1, {transport}", f"d {transport}")]  # fmt: skip
        rows.insert(-1, (f"(c5) worker drain, 5% anomalies, anomaly maps on, {transport}", f"c5 {transport}"))
        rows.insert(-1, (f"(c5-nox) the same (c5), --no-explain, {transport}", f"c5-nox {transport}"))
        if transport == "confluent":
            rows.insert(-1, ("(c-eos) the same (c), --processing-guarantee exactly-once, confluent", "c-eos"))
    print(f"{'stage':<68}{'records/s':>12}   (median of {args.repeats}; min - max)")
    for name, stage in rows:
        runs = spread[stage]
        print(f"{name:<68}{np.median(runs):>12,.0f}   {runs[0]:,.0f} - {runs[-1]:,.0f}")
        args.figures.add(stage, name, float(np.median(runs)), "records/s")
    manifest = ModelManifest.model_validate_json((bundle / MANIFEST_FILE).read_bytes())
    maps = "" if "anomaly_map" in manifest.outputs else \
        f" ({bundle} has no anomaly map output: re-run 'make train' to measure what maps cost)"
    for transport, (a, c, d, p50, p99, n) in results.items():
        args.figures.add(f"c/slowest {transport}", f"(c) / min((a), (b)) x 100, {transport}",
                         100 * c / min(a, b), "%")  # fmt: skip
        explained, unexplained = (float(np.median(spread[f"{k} {transport}"])) for k in ("c5", "c5-nox"))
        args.figures.add(f"c5/slowest {transport}", f"(c5) / min((a), (b)) x 100: 5% anomalies, {transport}",
                         100 * explained / min(a, b), "%")  # fmt: skip
        cost = 100 * (1 - explained / unexplained)
        args.figures.add(f"maps cost {transport}", f"(c5) / (c5-nox): what anomaly maps cost, {transport}",
                         cost, "%", higher_is_better=False)  # fmt: skip
        print(f"\n{transport}: anomaly maps on the alerts cost {cost:.1f}% of the drain on the 5% stream "
              f"((c5) {explained:,.0f} vs (c5-nox) {unexplained:,.0f} records/s; target at most 10%){maps}")
        print(f"\n{transport}: " + cpu_line(transport, cpu[transport], c, args))
        print(f"{transport}: " + cpu_line(transport, cpu5[transport], explained, args, "c5"))
        print(f"{transport}: " + scoring_line(float(np.median(scoring5[transport])), explained, b))
        args.figures.add(f"e p50 {transport}", f"(e) produce -> output p50, {transport}", p50, "ms",
                         higher_is_better=False)  # fmt: skip
        args.figures.add(f"e p99 {transport}", f"(e) produce -> output p99, {transport}", p99, "ms",
                         higher_is_better=False)  # fmt: skip
        print(
            f"\n{transport}: (e) produce -> output at {args.rate:.0f} records/s for {args.seconds:.0f} s "
            f"({n} outputs): p50 {p50:.0f} ms, p99 {p99:.0f} ms\n"
            f"  targets: (c) >= 0.85 x min((a), (b)) -> {c:,.0f} vs {0.85 * min(a, b):,.0f} "
            f"[{'met' if c >= 0.85 * min(a, b) else 'NOT met'}] ({share:.0%} anomalies; on the 5% stream, "
            f"maps on, (c5) {explained / min(a, b):.2f} x min((a), (b)) "
            f"[{'met' if explained >= 0.85 * min(a, b) else 'NOT met'}]); (c)/(d) >= 0.8 x (b)/(b1) -> "
            f"{c / d:.1f}x vs {0.8 * b / b_one:.1f}x [{'met' if c / d >= 0.8 * b / b_one else 'NOT met'}]; "
            f"p99 (e) <= 50 ms [{'met' if p99 <= 50 else 'NOT met'}]",
            flush=True,
        )
    args.plots.mkdir(parents=True, exist_ok=True)
    bars = plots.throughput(
        {"(b) onnxruntime": b, "(b1) batch 1": b_one},
        {t: {"(a) consume": a, "(c) worker": c, "(c5) 5% stream": float(np.median(spread[f"c5 {t}"])),
             "(d) batch 1": d} for t, (a, c, d, *_) in results.items()},
        args.plots / "bench_throughput.png",
    )
    cdf = plots.latency_cdf(latencies, args.rate, args.plots / "bench_latency.png")
    print(f"\nfigures: {bars}, {cdf}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
