"""Chaos on the project's own 3-broker cluster: records stream in at a steady rate while a broker
(or a worker) is killed, an ISR shrinks below min.insync.replicas or the cluster is down at start;
afterwards every input is accounted from the output topics.

`python -m tooling.chaos` (`make chaos`) runs each scenario with each Kafka client and prints one row
per run; the table is also written to a markdown file (default .chaos/results.md). docs/chaos.md
says what each scenario does and how to read the table. Not part of `make test`: a run takes
minutes and the three JVMs need most of a small machine.
"""

from __future__ import annotations

import argparse
import base64
import collections
import faulthandler
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from schemas import image_message
from tooling.broker import REPO, LocalKafka
from tooling.kafka import (
    PATIENT,
    STORED_PLAIN,
    admin,
    committed,
    create_topics,
    end_offsets,
    producer,
    read_topic,
    wait_for,
)
from tooling.process import metric_total, worker_settings
from tooling.process import start_worker_process as launch

OUTPUTS = ("alerts", "scores", "dead")
# Output topics stamp each record with the broker's append time: pauses are read from the log.
OUTPUT_CONFIG = {"message.timestamp.type": "LogAppendTime"}
RESTART_AFTER_S = 10.0


@dataclass
class Run:
    """One scenario with one Kafka client: its cluster, topics, workers and producer."""

    scenario: str
    transport: str
    kafka: LocalKafka
    repository: Path
    seconds: float
    rate: float
    session_timeout_ms: int = 10_000
    guarantee: str = "at-least-once"
    replicas: int = 3  # of each topic: the cluster's brokers, up to 3
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[subprocess.Popen] = field(default_factory=list)
    killed_workers: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    stream_t0: float = 0.0
    ready: ReadyWatch | None = None
    harm_at: float | None = None  # when the outputs' trouble began and ended (isr-blip), from t0
    healed_at: float | None = None
    restarts: list[int | None] = field(default_factory=list)  # exit codes of workers restarted
    replaced: set[int] = field(default_factory=set)  # their indexes

    def __post_init__(self) -> None:
        self.topics = {t: f"chaos-{t}-{self.run_id}" for t in ("input", *OUTPUTS)}
        self.topics["group"] = f"chaos-{self.run_id}"
        self.producer = SteadyProducer(self.kafka.bootstrap_servers, self.topics["input"], self.rate)
        self.t0, self.wall0 = time.monotonic(), time.time()

    def clock_jump_s(self) -> float:
        """How far the wall clock (the brokers' append times) ran ahead of this process's monotonic
        clock: a machine paused under load or by its host; pauses measured across it are longer."""
        return (time.time() - self.wall0) - (time.monotonic() - self.t0)

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    def log(self, what: str) -> None:
        print(f"  [{time.monotonic() - self.t0:5.1f} s, {time.strftime('%H:%M:%S')}] {what}", flush=True)

    def start_worker(self, port: int | None = None) -> None:
        first = not self.workers  # its /readyz is watched through the run
        port = port if port is not None else free_port() if first else 0
        settings = worker_settings(self.bootstrap, self.repository, self.topics, transport=self.transport,
                                   session_timeout_ms=self.session_timeout_ms, metrics_port=port,
                                   metrics_host="127.0.0.1", processing_guarantee=self.guarantee)  # fmt: skip
        # tooling.process's own start: the tests' one turns the metrics server off
        self.workers.append(launch(settings, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if first and port:
            self.ready = ReadyWatch(port, self.t0)
        threading.Thread(target=_drain, args=(self.workers[-1], self.log_path(len(self.workers))),
                         daemon=True).start()  # fmt: skip

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly-once"

    def supervise(self, stop: threading.Event) -> None:
        """Exactly-once: a worker that exits (1: a transaction aborted or a call stuck past its
        deadline) is started again, as its supervisor would; the first one keeps its /readyz watch."""
        while not stop.wait(0.5):
            for i, w in enumerate(self.workers):
                if i in self.killed_workers or i in self.replaced or w.poll() is None:
                    continue
                self.replaced.add(i)
                self.restarts.append(w.returncode)
                self.log(f"worker {i + 1} exited {w.returncode}: started again")
                self.start_worker(port=self.ready.port if i == 0 and self.ready else 0)

    def log_path(self, n: int) -> Path:
        return self.kafka.home.parent / "logs" / f"{self.scenario}-{self.transport}-worker{n}.log"

    def admin(self) -> AbstractContextManager[KafkaAdminClient]:
        return admin(self.bootstrap, request_timeout_ms=10_000)

    def leader(self, topic: str, partition: int = 0) -> int:
        with self.admin() as client:
            (desc,) = client.describe_topics([topic])
        return next(p["leader"] for p in desc["partitions"] if p["partition"] == partition)

    def coordinator(self) -> int:
        with self.admin() as client:
            return client._find_coordinator_ids([self.topics["group"]])[self.topics["group"]]

    def kill_broker(self, node: int) -> None:
        pid = int((self.kafka.home / f"node-{node}" / "broker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        self.log(f"broker {node} killed (SIGKILL)")

    def restart_brokers(self) -> None:
        t = time.monotonic()
        self.kafka.start()  # kafka.sh up starts only the nodes that are not running
        self.log(f"brokers restarted ({time.monotonic() - t:.0f} s to start)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReadyWatch:
    """Asks a worker's /readyz four times a second from a thread and keeps each change of its answer
    (200, 503, or None: no answer), with its time from `t0`; and, from /metrics, when the worker
    consumed records (an output is held from the first record consumed after the harm)."""

    def __init__(self, port: int, t0: float) -> None:
        self.port, self.url, self.t0 = port, f"http://127.0.0.1:{port}", t0
        self.changes: list[tuple[float, int | None]] = []
        self.consumed: list[tuple[float, float]] = []  # (time, records consumed so far), on each change
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            code, now = self._get("/readyz"), time.monotonic() - self.t0
            if not self.changes or self.changes[-1][1] != code:
                self.changes.append((now, code))
            count = metric_total(self.port, "anomaly_worker_records_consumed_total")  # 0: no answer
            if count and (not self.consumed or self.consumed[-1][1] != count):
                self.consumed.append((now, count))
            time.sleep(0.25)

    def _get(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def first(self, code: int, after: float) -> float | None:
        """When the answer first became `code` at or after `after` (both from t0)."""
        return next((t for t, c in self.changes if c == code and t >= after), None)

    def first_consumed(self, after: float) -> float | None:
        """When the worker was first seen to have consumed more records, at or after `after`."""
        return next((t for t, _ in self.consumed if t >= after), None)


def readiness_note(run: Run) -> str | None:
    """How /readyz followed the outputs' trouble: 503 how long after it began (and after the first
    record consumed since: a worker that consumes nothing holds no output), 200 how long after it ended."""
    if run.ready is None or run.harm_at is None or run.healed_at is None:
        return None
    down = run.ready.first(503, run.harm_at)
    up = run.ready.first(200, down) if down is not None else None
    if down is None:
        return "/readyz never turned 503 during the stall"
    back = f"200 again {up - run.healed_at:+.1f} s after the broker was back" if up else "never 200 again"
    held = run.ready.first_consumed(run.harm_at)
    since = f" ({down - held:.1f} s after the first record consumed since)" if held is not None else ""
    return f"/readyz 503 {down - run.harm_at:.1f} s after the outputs stalled{since}; {back}"


def _drain(proc: subprocess.Popen, path: Path) -> None:
    """Keep the worker's output flowing (a full pipe would stall it) into a log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for line in proc.stdout:
            f.write(line)


class SteadyProducer:
    """Image records `chaos/<i>` at `rate` per second from a thread, idempotent, acks=all; keeps
    trying through outages. `acked` holds the ids the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.acked: set[str] = set()
        self.failed: set[str] = set()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._value = image_message(np.zeros((28, 28), np.uint8), id="ID")

    def start(self) -> None:
        self._t0 = time.monotonic()  # records fall due from here, also while no broker answers
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(150)
        if self._thread.is_alive():
            print("  the producer did not finish within 150 s", flush=True)

    def _connect(self) -> KafkaProducer:
        while True:
            try:
                return producer(self.bootstrap, **PATIENT)
            except Exception:  # NoBrokersAvailable while the cluster is down
                if self._stop.wait(1.0):
                    raise

    def _run(self) -> None:
        try:
            sender = self._connect()
        except Exception:
            return
        tick = 0.1
        while not self._stop.is_set():
            due = int((time.monotonic() - self._t0) * self.rate)
            while self.sent < due and not self._stop.is_set():
                rid = f"chaos/{self.sent}"
                value = self._value.replace(b'"ID"', json.dumps(rid).encode())
                future = sender.send(self.topic, key=rid.encode(), value=value)
                future.add_callback(lambda _, rid=rid: self.acked.add(rid))
                future.add_errback(lambda _, rid=rid: self.failed.add(rid))
                self.sent += 1
            self._stop.wait(tick)
        sender.flush(timeout=120)
        sender.close()


# --- scenarios: each streams, does its harm, heals; `run.seconds` is the whole streaming time ---


def _hold(run: Run, until_s: float) -> None:
    """Keep streaming until `until_s` seconds after the stream started."""
    time.sleep(max(0.0, until_s - (time.monotonic() - run.stream_t0)))


def _kill_and_restart(run: Run, which: Callable[[Run], int], what: str) -> None:
    _hold(run, run.seconds * 0.25)
    node = which(run)
    run.notes.append(f"{what}: broker {node}")
    run.kill_broker(node)
    time.sleep(RESTART_AFTER_S)
    run.restart_brokers()
    _hold(run, run.seconds)


def leader_kill(run: Run) -> None:
    """SIGKILL the leader of the input's partition 0; start it again 10 s later."""
    _kill_and_restart(run, lambda r: r.leader(r.topics["input"]), "leader of input-0")


def coordinator_kill(run: Run) -> None:
    """SIGKILL the broker of the group's coordinator; start it again 10 s later."""
    _kill_and_restart(run, Run.coordinator, "coordinator")


def isr_blip(run: Run, prefer: Callable[[Run], int] | None = None) -> None:
    """min.insync.replicas 3 on the outputs, then one broker (not the scores' leader) down for 10 s:
    every output write fails with NOT_ENOUGH_REPLICAS until it is back in the ISR."""
    _hold(run, run.seconds * 0.25)
    with run.admin() as client:  # kafka-python's alter_configs replaces a topic's configs: give all of them
        configs = {**OUTPUT_CONFIG, "min.insync.replicas": "3"}
        resources = [ConfigResource(ConfigResourceType.TOPIC, run.topics[t], configs) for t in OUTPUTS]
        client.alter_configs(resources)
    run.log("outputs' min.insync.replicas = 3")
    candidates = [n for n in (1, 2, 3) if n != run.leader(run.topics["scores"])]
    wanted = prefer(run) if prefer else None  # a one-off check may pick a role (the coordinator)
    node = wanted if wanted in candidates else candidates[0]
    also = " (also the group's coordinator)" if node == run.coordinator() else ""
    run.notes.append(f"not the scores' leader: broker {node}{also}")
    _take_down(run, [node], RESTART_AFTER_S)


def two_of_three(run: Run) -> None:
    """SIGKILL two of the three brokers (quorum and ISR lost), start them again 30 s later."""
    _hold(run, run.seconds * 0.25)
    for node in (2, 3):
        run.kill_broker(node)
    time.sleep(30)
    run.restart_brokers()
    _hold(run, run.seconds)


def down_at_start(run: Run) -> None:
    """The cluster was stopped before the worker started (in `execute`) and is up again: stream on
    for half of `seconds`."""
    time.sleep(run.seconds / 2)


def worker_sigkill(run: Run) -> None:
    """Three workers in one group; SIGKILL one of them mid-stream (its partitions move after the
    session timeout, 10 s)."""
    _hold(run, run.seconds * 0.4)
    run.workers[0].send_signal(signal.SIGKILL)
    run.killed_workers.add(0)
    run.log("worker 1 of 3 killed (SIGKILL)")
    _hold(run, run.seconds)


def _down_for(run: Run, nodes: Callable[[Run], list[int]], what: str, seconds: float) -> None:
    """SIGKILL `nodes` a quarter into the stream, start them again `seconds` later (the outputs'
    trouble, for the readiness note, is the time they are down)."""
    _hold(run, run.seconds * 0.25)
    down = nodes(run)
    run.notes.append(f"{what}: broker(s) {','.join(map(str, down))} down {seconds:.0f} s")
    _take_down(run, down, seconds)


def _take_down(run: Run, nodes: list[int], seconds: float) -> None:
    """SIGKILL `nodes`, start them again `seconds` later (the time between is the outputs' trouble,
    for the readiness note), then stream on to the end."""
    for node in nodes:
        run.kill_broker(node)
    run.harm_at = time.monotonic() - run.t0
    time.sleep(seconds)
    run.restart_brokers()
    run.healed_at = time.monotonic() - run.t0
    _hold(run, run.seconds)


def _all_nodes(run: Run) -> list[int]:
    return list(range(1, run.replicas + 1))


def _outage(name: str, nodes: Callable[[Run], list[int]], seconds: int) -> Callable[[Run], None]:
    def scenario(run: Run) -> None:
        _down_for(run, nodes, name, seconds)

    scenario.__doc__ = f"SIGKILL the {name} broker(s) a quarter in; start them again {seconds} s later."
    return scenario


# A broker outage (made for --processing-guarantee exactly-once; at least once takes them too): the
# input's leader, the group's coordinator, or every broker, down for 15 or 60 s.
OUTAGES = {
    f"{name}-down-{seconds}s": _outage(name, nodes, seconds)
    for name, nodes in (
        ("leader", lambda r: [r.leader(r.topics["input"])]),
        ("coordinator", lambda r: [r.coordinator()]),
        ("all", _all_nodes),
    )
    for seconds in (15, 60)
}


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "leader-kill": leader_kill,
    "coordinator-kill": coordinator_kill,
    "isr-blip": isr_blip,
    "two-of-three": two_of_three,
    "down-at-start": down_at_start,
    "worker-sigkill": worker_sigkill,
    **OUTAGES,
}


@dataclass
class Result:
    scenario: str
    transport: str
    records: int
    missing: int
    duplicates: int
    longest_pause_s: float
    survived: bool
    exit_codes: list[int | None]
    not_produced: int
    notes: list[str]

    def row(self) -> list[str]:
        codes = ",".join("-" if c is None else str(c) for c in self.exit_codes)
        return [self.scenario, self.transport, f"{self.records:,}", str(self.missing), str(self.duplicates),
                f"{self.longest_pause_s:.1f}", "yes" if self.survived else "NO", codes]  # fmt: skip


HEADER = ["scenario", "transport", "records", "missing", "duplicates", "longest pause s",
          "worker survived", "exit code"]  # fmt: skip


def make_topics(run: Run) -> None:
    partitions = {run.topics["input"]: 3, **{run.topics[t]: 1 for t in OUTPUTS}}
    configs = {run.topics["input"]: STORED_PLAIN, **{run.topics[t]: OUTPUT_CONFIG for t in OUTPUTS}}
    with run.admin() as client:
        create_topics(run.bootstrap, partitions, configs, client, run.replicas)


def healthy(kafka: LocalKafka) -> bool:
    """Every broker up and every partition's ISR full."""
    try:
        with admin(kafka.bootstrap_servers, request_timeout_ms=5_000) as client:
            brokers = len(client.describe_cluster()["brokers"])
            topics = client.describe_topics()
    except Exception:
        return False
    return brokers == 3 and all(len(p["isr"]) == 3 for t in topics for p in t["partitions"])


def execute(run: Run) -> Result:
    make_topics(run)
    harm = SCENARIOS[run.scenario]
    if run.scenario == "down-at-start":
        run.kafka.stop()
        run.log("cluster stopped")
    for _ in range(3 if run.scenario == "worker-sigkill" else 1):
        run.start_worker()
    run.log(f"{len(run.workers)} worker(s) started ({run.transport})")
    if run.scenario == "down-at-start":
        run.producer.start()
        run.stream_t0 = time.monotonic()
        time.sleep(20)
        run.restart_brokers()
    else:  # stream once the worker answers, so the harm falls mid-stream
        run.producer.start()
        run.stream_t0 = time.monotonic()
        wait_for(lambda: sum(_end(run).values()) > 0 or _exited(run), 120)
    supervising = threading.Event()
    if run.exactly_once:
        threading.Thread(target=run.supervise, args=(supervising,), daemon=True).start()
    harm(run)
    run.producer.stop()
    run.log(f"producing stopped: {run.producer.sent:,} sent, {len(run.producer.acked):,} acknowledged")
    _wait_quiet(run, cap_s=360 if run.exactly_once else 240)
    supervising.set()
    time.sleep(1)  # a restart in progress finishes
    gone = run.killed_workers | run.replaced
    survived = all(w.poll() is None for i, w in enumerate(run.workers) if i not in gone)
    for i, w in enumerate(run.workers):
        if i not in gone and w.poll() is None:
            w.send_signal(signal.SIGTERM)
    codes = []
    for w in (w for i, w in enumerate(run.workers) if i not in run.replaced):
        try:
            codes.append(w.wait(120))
        except subprocess.TimeoutExpired:
            w.kill()
            codes.append(None)
    return account(run, survived, codes)


def _exited(run: Run) -> bool:
    return any(w.poll() is not None for w in run.workers)


def _end(run: Run) -> dict[str, int]:
    """Output records so far per output topic (input probe: the first outputs)."""

    try:
        return {t: sum(end_offsets(run.bootstrap, run.topics[t]).values()) for t in OUTPUTS}
    except Exception:
        return {}


def _all_committed(run: Run) -> bool:
    """The group's commits have reached the input's end (exactly-once: the outputs' end offsets also
    count aborted transactions and their markers, so they say nothing of what is answered)."""

    try:
        return committed(run.bootstrap, run.topics["group"], run.topics["input"]) == end_offsets(
            run.bootstrap, run.topics["input"]
        )
    except Exception:
        return False


def _wait_quiet(run: Run, quiet_s: float = 15, cap_s: float = 240) -> None:
    """Until every acknowledged input has an output, or the outputs stop growing for `quiet_s`
    (exactly-once: until the group has committed up to the input's end, or `cap_s`)."""
    deadline, last, since = time.monotonic() + cap_s, -1, time.monotonic()
    if run.exactly_once:
        wait_for(lambda: _all_committed(run), cap_s, every_s=2)
        run.log(f"inputs all committed: {_all_committed(run)}")
        return
    while time.monotonic() < deadline:
        total = sum(_end(run).values())
        if total != last:
            last, since = total, time.monotonic()
        if total >= len(run.producer.acked) or time.monotonic() - since > quiet_s:
            break
        time.sleep(1)
    run.log(f"outputs settled at {last:,}")


def _record_id(topic: str, out: dict) -> str | None:
    if topic != "dead":
        return out.get("record_id")
    try:
        return json.loads(base64.b64decode(out["original"])).get("id")
    except Exception:
        return None


def account(run: Run, survived: bool, codes: list[int | None]) -> Result:
    counts: collections.Counter = collections.Counter()
    stamps: dict[object, list[int]] = collections.defaultdict(list)  # input partition -> append times
    isolation = "read_committed" if run.exactly_once else "read_uncommitted"
    for t in OUTPUTS:
        for m in read_topic(run.bootstrap, run.topics[t], quiet_s=3, isolation=isolation):
            out = json.loads(m.value)
            counts[_record_id(t, out)] += 1
            stamps[(out.get("source") or {}).get("partition")].append(m.timestamp)
    gaps = (b - a for ts in stamps.values() for a, b in itertools.pairwise(sorted(ts)))
    pause = max(gaps, default=0) / 1000
    acked = run.producer.acked
    note = readiness_note(run)
    if note:
        run.notes.append(note)
    if run.restarts:
        run.notes.append(f"restarted by the supervisor after exit code(s) {run.restarts}")
    jump = run.clock_jump_s()
    if abs(jump) > 1:
        run.notes.append(f"wall clock {jump:+.0f} s against the monotonic one: pauses may include that")
    return Result(
        scenario=run.scenario,
        transport=run.transport,
        records=len(acked),
        missing=sum(1 for rid in acked if counts[rid] == 0),
        duplicates=sum(n - 1 for n in counts.values() if n > 1),
        longest_pause_s=pause,
        survived=survived,
        exit_codes=run.restarts + codes,
        not_produced=len(run.producer.failed),
        notes=run.notes,
    )


def markdown(results: list[Result], seconds: float, rate: float, session_ms: int, how: str = "") -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# make chaos: {when}", "",
             f"{os.cpu_count()} CPU cores; {seconds:.0f} s of streaming at {rate:.0f} records/s per run; "
             f"group session timeout {session_ms / 1000:.0f} s{how}.", "",
             "| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]  # fmt: skip
    lines += ["| " + " | ".join(r.row()) + " |" for r in results]
    notes = [f"- {r.scenario} / {r.transport}: {'; '.join(r.notes)}" for r in results if r.notes]
    notes += [f"- {r.scenario} / {r.transport}: {r.not_produced} records the producer could not write"
              for r in results if r.not_produced]  # fmt: skip
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def print_row(cells: list[str]) -> None:
    widths = [16, 12, 8, 8, 10, 15, 15, 9]
    cols = enumerate(zip(cells, widths, strict=True))
    print("  ".join(f"{c:>{w}}" if i > 1 else f"{c:<{w}}" for i, (c, w) in cols), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tooling.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--scenarios", default=None,
                   help=f"comma-separated, of {', '.join(SCENARIOS)} (default: those before the outages; "
                   "with --processing-guarantee exactly-once, the outages)")  # fmt: skip
    p.add_argument("--transports", default="kafka-python,confluent", help="comma-separated Kafka clients")
    p.add_argument("--seconds", type=float, default=40, help="streaming time of each run")
    p.add_argument("--rate", type=float, default=100, help="records per second")
    p.add_argument("--processing-guarantee", default="at-least-once",
                   choices=["at-least-once", "exactly-once"],
                   help="exactly-once: confluent only; read_committed accounting; a worker that exits is "
                   "started again, as its supervisor would")  # fmt: skip
    p.add_argument("--brokers", type=int, default=3, choices=[1, 3], help="the cluster's size")
    p.add_argument("--session-timeout-ms", type=int, default=10_000,
                   help="the workers' group session (the worker's own default is 30000)")  # fmt: skip
    p.add_argument(
        "--model-repository",
        type=Path,
        default=None,
        help="bundles to serve (default: a tiny bundle, trained once into .chaos/models)",
    )
    p.add_argument("--out", type=Path, default=REPO / ".chaos" / "results.md", help="the table, in markdown")
    args = p.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack, if a run hangs
    eos = args.processing_guarantee == "exactly-once"
    default = [n for n in SCENARIOS if (n in OUTAGES) == eos]
    scenarios = args.scenarios.split(",") if args.scenarios else default
    transports = args.transports.split(",")
    if args.processing_guarantee == "exactly-once":
        if "kafka-python" in transports and args.transports != p.get_default("transports"):
            p.error("--processing-guarantee exactly-once runs with --transports confluent only")
        transports = ["confluent"]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}: pick from {', '.join(SCENARIOS)}")
    repository = args.model_repository or _train(REPO / ".chaos" / "models")
    home = REPO / ".chaos" / "run"
    subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), "down", "--home", str(home / "kafka")],
                   capture_output=True)  # fmt: skip
    kafka = LocalKafka(home=home / "kafka", brokers=args.brokers).start()
    started = f"{kafka.start_seconds:.0f} s to start"
    print(f"{args.brokers}-broker cluster on {kafka.bootstrap_servers} ({started})", flush=True)
    results: list[Result] = []
    how = f"; {args.brokers} broker(s); {args.processing_guarantee}"
    if args.processing_guarantee == "exactly-once":
        how += " (outputs read with isolation.level=read_committed)"
    try:
        for scenario in scenarios:
            for transport in transports:
                kafka.start()  # every node up again
                wait_for(lambda: healthy(kafka), 120, every_s=2)
                print(f"{scenario} ({transport})", flush=True)
                run = Run(scenario, transport, kafka, repository, args.seconds, args.rate,
                          args.session_timeout_ms, args.processing_guarantee, args.brokers)  # fmt: skip
                try:
                    results.append(execute(run))
                finally:
                    for w in run.workers:
                        if w.poll() is None:
                            w.kill()
                print_row(HEADER)
                print_row(results[-1].row())
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(markdown(results, args.seconds, args.rate, args.session_timeout_ms, how))
    finally:
        kafka.stop()
    print(f"\n{args.out}:\n")
    print(markdown(results, args.seconds, args.rate, args.session_timeout_ms, how))
    # Exactly-once: exit 1 is the designed way out of a stuck transaction; its supervisor starts it again.
    allowed = (0, -9, 1) if args.processing_guarantee == "exactly-once" else (0, -9)
    bad = [r for r in results if r.missing or not r.survived or any(c not in allowed for c in r.exit_codes)
           or (args.processing_guarantee == "exactly-once" and r.duplicates)]  # fmt: skip
    return 1 if bad else 0


def _train(models: Path) -> Path:
    if not list(models.glob("*/*/manifest.json")):
        from training.images.pipeline import train_bundle
        from training.settings import ImageTrainSettings

        print("training a tiny bundle into", models, flush=True)
        train_bundle(ImageTrainSettings(out=models / "tiny-vae" / "1", epochs=2, progress=False))
    return models


if __name__ == "__main__":
    sys.exit(main())
