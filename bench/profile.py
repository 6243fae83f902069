"""Where the worker's time goes while it drains a topic: a py-spy profile of the worker process (every
thread), split by stage, per record.

    python -m bench.profile                        # kafka-python, 50,000 MNIST records
    python -m bench.profile --transport confluent

The worker drains a full topic as in stage (c) of `make bench` (alerts only, --max-batch 256), with
py-spy sampling it (not stopping it: --nonblocking) from the first record to the last. Each sample of
a running thread is put in the stage of its innermost frame that one of STAGES claims, so the
client's own work (kafka/, confluent_kafka) is told apart from the worker's code that called it.
Prints, per thread, the CPU time per record of each stage and the share of the drain the thread was
running; the loop's thread running most of the time means it is the bound.

Needs py-spy (`pip install py-spy`; it reads the process's memory, so it may need root or
CAP_SYS_PTRACE). Not part of `make bench`: sampling costs the worker a little.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import REPO, cpu_seconds, cpus, start_worker
from bench.run import latest_bundle, mnist_messages, produce_all, realistic_messages
from tooling.broker import LocalKafka, free_port_block
from tooling.kafka import STORED_PLAIN, create_topic
from tooling.process import metric_total, wait_ready

# (stage, a piece of the frame's text: "function (path:line)"); the innermost frame that matches one
# names the sample's stage, so json and pydantic count for whoever called them (decode or publish).
STAGES: list[tuple[str, str]] = [
    ("score: onnxruntime", "onnxruntime/"),
    ("score: the worker's side", "worker/score.py"),
    ("unpack (kafka-python, bounded)", "worker/kafka/unpack.py"),
    ("client: produce", "kafka/producer/"),
    ("client: fetch and parse", "kafka/consumer/"),
    ("client: fetch and parse", "kafka/record/"),
    ("client: fetch and parse", "worker/kafka/records.py"),  # the worker's reader of kafka-python's batches
    ("client: network", "kafka/client_async.py"),
    ("client: network", "kafka/conn.py"),
    ("client: network", "kafka/protocol/"),
    ("client: network", "selectors.py"),
    ("client: network", "socket.py"),
    ("client: librdkafka calls", "confluent_kafka"),
    ("client: librdkafka calls", "worker/kafka/confluent.py"),
    ("client: the worker's adapter", "worker/kafka/kafka_python.py"),
    ("decode", "schemas/decode.py"),
    ("decode", "worker/decode.py"),
    ("batch", "worker/batch.py"),
    ("decide", "worker/decide.py"),
    ("decide", "worker/kinds/"),
    ("publish: build the outputs", "worker/publish.py"),
    ("publish: build the outputs", "schemas/encode.py"),
    ("publish: build the outputs", "schemas/outputs.py"),
    ("checkpoint and commit", "worker/checkpoint.py"),
    ("metrics", "prometheus_client"),
    ("metrics", "worker/metrics.py"),
    ("metrics", "worker/lag.py"),
    ("metrics", "worker/summary.py"),
    ("the loop itself", "worker/app.py"),
]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for stage, piece in STAGES:
            if piece in frame:
                return stage
    return "other"


def split(raw: Path) -> dict[str, collections.Counter[str]]:
    """Samples per thread and stage, from py-spy's raw output (one `thread (tid): name;frame;... count`
    line per distinct stack)."""
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        head, *frames = stack.split(";")
        thread = _thread_name(head.partition(": ")[2], frames)
        out[thread][stage_of(frames)] += int(count)
    return out


def _thread_name(name: str, frames: list[str]) -> str:
    if name.startswith("kafka-python-producer") or any("Sender.run" in f for f in frames):
        return "kafka-python producer's sender"
    if name.startswith("kafka-python-heartbeat"):
        return "kafka-python heartbeat"
    return name or "unnamed"


def report(samples: dict[str, collections.Counter[str]], rate_hz: int, seconds: float,
           records: int, state: str = "running") -> list[str]:  # fmt: skip
    sampled = "running threads only" if state == "running" else "waiting threads too"
    lines = [f"{records:,} records drained in {seconds:.1f} s ({records / seconds:,.0f} records/s); "
             f"py-spy at {rate_hz} Hz, {sampled}"]  # fmt: skip
    for thread, stages in sorted(samples.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(stages.values())
        busy = total / rate_hz / seconds
        per_record = total / rate_hz / records * 1e6
        lines.append(f"\n{thread}: {state} {busy:.0%} of the drain, {per_record:,.1f} us a record")
        for stage, n in stages.most_common():
            us = n / rate_hz / records * 1e6
            lines.append(f"  {stage:<34}{us:>8.1f} us a record  {n / total:>5.0%}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--transport", default="kafka-python", choices=["kafka-python", "confluent"])
    p.add_argument("--records", type=int, default=50_000, help="MNIST records to drain (20,000 distinct)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--anomaly-share", type=float, default=None,
                   help="drain the realistic stream of (c5) instead (MNIST 1s and 4s with this share of 5s, "
                        "e.g. 0.05) rather than (c)'s, where a quarter are anomalies")  # fmt: skip
    p.add_argument("--rate-hz", type=int, default=250, help="py-spy's samples per second")
    p.add_argument("--idle", action="store_true",
                   help="sample waiting threads too: where each thread waits (its shares then add up to "
                        "the whole drain)")  # fmt: skip
    p.add_argument("--model-repository", type=Path, default=REPO / "models")
    p.add_argument("--out", type=Path, default=REPO / ".bench" / "profile", help="py-spy's output")
    args = p.parse_args()
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if spy is None:
        p.error("needs py-spy: pip install py-spy")
    bundle = latest_bundle(args.model_repository, "mnist-vae", "image")
    if bundle is None:
        p.error(f"no mnist-vae bundle in {args.model_repository}: run 'make train' first")
    if args.anomaly_share is None:
        distinct, _ = mnist_messages(20_000)
        messages = [distinct[i % len(distinct)] for i in range(args.records)]
    else:
        messages = realistic_messages(args.records, args.anomaly_share)
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else LocalKafka(home=Path(tempfile.mkdtemp(prefix="bench-kafka-")))
    try:
        bootstrap = external or broker.start().bootstrap_servers
        topic = create_topic(bootstrap, f"bench-profile-{uuid.uuid4().hex[:8]}", 3, STORED_PLAIN)
        produce_all(bootstrap, topic, messages)
        lines = profile(bootstrap, topic, bundle, spy, args, broker.pids() if broker else [])
    finally:
        if broker is not None:
            broker.stop()
            shutil.rmtree(broker.home, ignore_errors=True)
    print("\n".join(lines))
    return 0


def profile(bootstrap: str, topic: str, bundle: Path, spy: str, args: argparse.Namespace,
            broker_pids: list[int]) -> list[str]:  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"{args.transport}.txt"
    port = free_port_block(1)
    alerts = create_topic(bootstrap, f"bench-alerts-{uuid.uuid4().hex[:8]}", 1)
    model = f"{bundle.parent.name}:{bundle.name}"
    proc = start_worker(bootstrap, args.model_repository, topic, alerts, port, max_batch=args.max_batch,
                        default_model=model, transport=args.transport)  # fmt: skip
    try:
        wait_ready(port, proc)
        command = [spy, "record", "--pid", str(proc.pid), "--format", "raw", "--output", str(raw),
                   "--threads", "--nonblocking", "--rate", str(args.rate_hz)]  # fmt: skip
        if args.idle:
            command.append("--idle")
        sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while metric_total(port, "anomaly_worker_records_consumed_total") == 0:
            time.sleep(0.05)
        t0 = time.monotonic()
        cpu0 = cpu_seconds([proc.pid]), cpu_seconds(broker_pids)
        while metric_total(port, "anomaly_worker_records_scored_total") < args.records:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}")
            time.sleep(0.5)
        seconds = time.monotonic() - t0
        worker_cpu = (cpu_seconds([proc.pid]) - cpu0[0]) / seconds
        broker_cpu = (cpu_seconds(broker_pids) - cpu0[1]) / seconds
        sampler.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        _, err = sampler.communicate(timeout=60)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.strip()[-500:]}")
    finally:
        proc.terminate()
        proc.wait(60)
    cores = cpus()
    broker = f", the broker {broker_cpu:.2f}" if broker_pids else " (the broker's is not known here)"
    return [f"{args.transport}, --max-batch {args.max_batch}; py-spy's samples in {raw}",
            f"CPU during the drain, in cores of the {cores}: the worker process {worker_cpu:.2f} (all its "
            f"threads, librdkafka's too){broker}",
            *report(split(raw), args.rate_hz, seconds, args.records, "sampled" if args.idle else "running")]


if __name__ == "__main__":
    sys.exit(main())
