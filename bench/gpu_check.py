"""`make gpu-check`: where the GPU path stops keeping up, in one run (issue 16).

  (g1) onnxruntime alone, per model (conv MNIST, dense MNIST, KPI) and batch size, through plain run(),
       IO binding, and (on CUDA) a CUDA graph
  (g2) the worker's own path fed from memory at full speed: decode_message, Batcher, ScoreStage (its
       thread, its scorer), the kind's decide; no Kafka
  (g3) the full worker on a local broker at --max-batch 1 and at the default (only where `java` exists,
       and not with --quick)

Each figure gives its ratio to the one before it (the previous batch size; IO binding against run();
the worker's path against onnxruntime alone at the same batch), so the bottleneck shows. Prints a table
and writes JSON (date, machine, onnxruntime version and providers, every figure). A bundle that is not
there is reported and skipped, never trained here. Asserts nothing (figures, not tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

from schemas import MANIFEST_FILE, ModelManifest, image_message
from schemas.repository import bundle_folders, latest_bundle_folder
from worker.batch import Batcher
from worker.decode import decode_message
from worker.kinds import kinds_for
from worker.score import BoundScorer, GraphScorer, RunScorer, ScoreStage
from worker.serving.device import CUDA, CudaOptions, DeviceError, choose_providers, provider_names
from worker.serving.registry import LoadedModel, ModelRegistry, load_bundle
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 256, 1024, 4096, 16384)
QUICK_BATCHES = (1, 256, 1024)


def find_bundles(repo: Path, args: argparse.Namespace) -> dict[str, Path | None]:
    """conv / dense MNIST and KPI bundles: the named models' latest versions; a dense one may be any
    image bundle trained with --arch dense."""

    def latest(name: str) -> Path | None:
        return latest_bundle_folder(repo, name) if repo.is_dir() else None

    def arch(folder: Path) -> str | None:
        manifest = ModelManifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
        return (manifest.training or {}).get("arch")

    found: dict[str, Path | None] = {"conv": latest(args.conv_model), "dense": latest(args.dense_model),
                                     "kpi": latest(args.kpi_model)}  # fmt: skip
    for role in ("conv", "dense"):
        if found[role] is not None and arch(found[role]) != role:
            found[role] = None
        if found[role] is None and repo.is_dir():
            matches = [f for f in bundle_folders(repo) if arch(f) == role]
            found[role] = matches[-1] if matches else None
    return found


def rate_of(score, x: np.ndarray, min_s: float, min_calls: int = 3) -> float:
    """Rows/s of `score(x)`, repeated for at least `min_s` and `min_calls`."""
    score(x)  # warm: first-shape allocations, cuDNN algorithm choice
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < min_s:
        score(x)
        calls += 1
    return len(x) * calls / (time.perf_counter() - t0)


def inputs_for(model: LoadedModel, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if model.manifest.kind == "image":
        return rng.random((n, *model.record_shape), dtype=np.float32)
    return rng.standard_normal((n, *model.record_shape)).astype(np.float32)


def g1(role: str, folder: Path, providers: list, cuda: CudaOptions | None, args) -> list[dict]:
    """onnxruntime alone: run() and IO binding (and a CUDA graph on CUDA) at each batch size."""
    model = load_bundle(folder, providers, args.threads)
    on_cuda = model.providers[0] == CUDA
    rows, prev = [], {}
    for batch in args.batches:
        x = inputs_for(model, batch)
        figures = {"run": rate_of(RunScorer(model, batch).score, x, args.seconds),
                   "iobinding": rate_of(BoundScorer(model, batch).score, x, args.seconds)}  # fmt: skip
        if on_cuda and cuda is not None:
            try:  # a session of its own: the graph is captured for this batch's shape
                graphed = load_bundle(folder, [(CUDA, {**cuda.provider_options(), "enable_cuda_graph": "1"})],
                                      args.threads)  # fmt: skip
                scorer = GraphScorer(graphed, batch, cuda.device_id)
                figures["cuda_graph"] = rate_of(scorer.score, x, args.seconds)
            except Exception as exc:  # reported, not fatal: the other figures stand
                figures["cuda_graph_error"] = f"{type(exc).__name__}: {exc}"
        for mode, rate in list(figures.items()):
            if isinstance(rate, float):
                row = {"stage": "g1", "model": role, "bundle": str(folder), "providers": model.providers,
                       "mode": mode, "batch": batch, "records_per_s": rate,
                       "x_previous_batch": rate / prev[mode] if mode in prev else None,
                       "x_run": rate / figures["run"] if mode != "run" else None}  # fmt: skip
                rows.append(row)
                prev[mode] = rate
        if "cuda_graph_error" in figures:
            rows.append({"stage": "g1", "model": role, "mode": "cuda_graph", "batch": batch,
                         "error": figures["cuda_graph_error"]})  # fmt: skip
    return rows


def g2(role: str, folder: Path, providers: list, args, alone: dict[tuple[str, int], float]) -> list[dict]:
    """The worker's path from memory: decode, batch, score (its thread), decide; at each batch size."""
    model = load_bundle(folder, providers, args.threads)
    rng = np.random.default_rng(1)
    n = args.g2_records
    values = [image_message(rng.integers(0, 256, model.record_shape, dtype=np.uint8), id=f"g2/{i}")
              for i in range(n)]  # fmt: skip
    messages = [SimpleNamespace(topic="g2", partition=0, offset=i, key=None, timestamp=0, value=v)
                for i, v in enumerate(values)]  # fmt: skip
    models = ModelRegistry([model], None)
    rows = []
    kinds = kinds_for(models, WorkerSettings())
    t0 = time.perf_counter()
    for m in messages:
        decode_message(m, models, kinds, 1 << 20)
    decode_rate = n / (time.perf_counter() - t0)
    rows.append({"stage": "g2", "model": role, "part": "decode alone", "records_per_s": decode_rate})
    for batch in args.batches:
        if batch > n:
            continue
        for mode in ("off", "on"):
            settings = WorkerSettings(max_batch=batch, io_binding=mode)
            kinds = kinds_for(models, settings)
            batcher, scoring = Batcher(batch, 60_000), ScoreStage(batch, io_binding=mode)
            t0 = time.perf_counter()
            for m in messages:
                decoded = decode_message(m, models, kinds, 1 << 20)
                full = batcher.add(kinds[model.key], decoded[1])
                if full is not None:
                    scoring.submit(full)
                    decide(scoring, scoring.completed())
            for b in batcher.drain():
                scoring.submit(b)
            while scoring.busy():
                decide(scoring, scoring.completed(wait_s=0.1))
            rate = n / (time.perf_counter() - t0)
            scoring.close()
            mode_name = "iobinding" if mode == "on" else "run"
            base = alone.get((role, batch, mode_name))
            rows.append({"stage": "g2", "model": role, "part": "worker path", "mode": mode_name,
                         "batch": batch, "records_per_s": rate,
                         "x_onnxruntime_alone": rate / base if base else None,
                         "x_decode_alone": rate / decode_rate})  # fmt: skip
    return rows


def decide(scoring: ScoreStage, results: list) -> None:
    """What the loop does with a scored batch, short of publishing: the kind's decision."""
    for r in results:
        if r.error is not None:
            raise r.error
        r.batch.kind.decide(r.batch.items, r.scores, r.batch.prepared)
        scoring.finish(r.batch)


def g3(folder: Path, args) -> list[dict]:
    """The full worker on a local broker: --max-batch 1 and the default (bench/run.py's drain rate)."""
    from bench.run import produce_all, worker_drain_rate
    from tooling.broker import LocalKafka
    from tooling.kafka import STORED_PLAIN, create_topic

    model = load_bundle(folder, ["CPUExecutionProvider"], 1)
    rng = np.random.default_rng(2)
    messages = [image_message(rng.integers(0, 256, model.record_shape, dtype=np.uint8), id=f"g3/{i}")
                for i in range(args.g3_records)]  # fmt: skip
    broker = LocalKafka(home=Path(tempfile.mkdtemp(prefix="gpu-check-kafka-")))
    rows: list[dict] = []
    try:
        bootstrap = broker.start().bootstrap_servers
        topic = create_topic(bootstrap, f"gpu-check-{os.getpid()}", 2, STORED_PLAIN)
        produce_all(bootstrap, topic, messages)
        prev = None
        for max_batch in (1, WorkerSettings().max_batch):
            n = min(len(messages), args.g3_batch1_records) if max_batch == 1 else len(messages)
            # Random images: nearly every record alerts, the stress case (FIELD-NOTES).
            rate = worker_drain_rate(bootstrap, folder.parent.parent, topic, n, max_batch=max_batch,
                                     default_model=f"{folder.parent.name}:{folder.name}",
                                     device=args.device, io_binding=args.io_binding)  # fmt: skip
            rows.append({"stage": "g3", "max_batch": max_batch, "records_per_s": rate,
                         "x_previous": rate / prev if prev else None})  # fmt: skip
            prev = rate
    finally:
        broker.stop()
        shutil.rmtree(broker.home, ignore_errors=True)
    return rows


def machine() -> dict[str, object]:
    info: dict[str, object] = {"host": platform.node(), "platform": platform.platform(),
                               "python": platform.python_version(), "cpus": os.cpu_count()}  # fmt: skip
    if shutil.which("nvidia-smi"):
        try:
            query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
            out = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
            info["gpus"] = out.splitlines()
        except (OSError, subprocess.SubprocessError) as exc:
            info["gpus"] = f"nvidia-smi failed: {exc}"
    return info


def fmt(x: float | None, ratio: bool = False) -> str:
    if x is None:
        return ""
    return f"{x:.2f}x" if ratio else f"{x:,.0f}"


def print_table(report: dict) -> None:
    head = f"\n{'stage':<6}{'model':<7}{'what':<22}{'batch':>7}{'records/s':>14}"
    print(f"{head}{'x prev batch':>14}{'x run()':>10}")
    for r in report["g1"]:
        if "error" in r:
            print(f"{'g1':<6}{r['model']:<7}{r['mode']:<22}{r['batch']:>7}  {r['error']}")
            continue
        print(f"{'g1':<6}{r['model']:<7}{r['mode']:<22}{r['batch']:>7}{fmt(r['records_per_s']):>14}"
              f"{fmt(r['x_previous_batch'], True):>14}{fmt(r['x_run'], True):>10}")  # fmt: skip
    print(f"{head}{'x ort alone':>14}{'x decode':>10}")
    for r in report["g2"]:
        what = r["part"] if "mode" not in r else f"worker path, {r['mode']}"
        print(f"{'g2':<6}{r['model']:<7}{what:<22}{r.get('batch', ''):>7}{fmt(r['records_per_s']):>14}"
              f"{fmt(r.get('x_onnxruntime_alone'), True):>14}"
              f"{fmt(r.get('x_decode_alone'), True):>10}")  # fmt: skip
    if report["g3"]:
        print(f"\n{'stage':<6}{'what':<36}{'records/s':>14}{'x previous':>12}")
        for r in report["g3"]:
            print(f"{'g3':<6}{'worker on a broker, --max-batch ' + str(r['max_batch']):<36}"
                  f"{fmt(r['records_per_s']):>14}{fmt(r['x_previous'], True):>12}")  # fmt: skip
    for line in report["skipped"]:
        print(f"skipped: {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="as the worker's")
    p.add_argument("--model-repository", type=Path, default=REPO / "models")
    p.add_argument("--conv-model", default="mnist-vae", help="conv MNIST model (its latest version)")
    p.add_argument("--dense-model", default="mnist-dense",
                   help="dense MNIST model; else any image bundle trained with --arch dense")  # fmt: skip
    p.add_argument("--kpi-model", default="kpi-vae", help="KPI model")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)), help="batch sizes, comma-separated")
    p.add_argument("--seconds", type=float, default=1.0, help="least time per g1 figure")
    p.add_argument("--threads", type=int, default=WorkerSettings().intra_op_threads,
                   help="onnxruntime intra-op threads (the worker's default)")  # fmt: skip
    p.add_argument("--g2-records", type=int, default=65_536, help="records through the worker's path (g2)")
    p.add_argument("--g3-records", type=int, default=20_000, help="records on the broker (g3)")
    p.add_argument("--g3-batch1-records", type=int, default=3_000, help="of them, read at --max-batch 1")
    p.add_argument("--io-binding", choices=["auto", "on", "off"], default="auto", help="the worker's, in g3")
    p.add_argument("--no-kafka", action="store_true", help="skip g3")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: batches 1, 256, 1024, short figures, few records, no g3")  # fmt: skip
    p.add_argument("--out", type=Path, default=REPO / ".bench" / "gpu-check.json", help="the JSON report")
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.quick:
        args.batches = [b for b in args.batches if b in QUICK_BATCHES] or list(QUICK_BATCHES)
        args.seconds, args.g2_records, args.no_kafka = 0.2, min(args.g2_records, 2048), True
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cuda = CudaOptions()
    try:
        providers = choose_providers(args.device, cuda)
    except DeviceError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    if CUDA in provider_names(providers) and hasattr(ort, "preload_dlls"):
        try:  # CUDA and cuDNN from the nvidia-* packages (as PyTorch installs them), if they are there
            ort.preload_dlls()
        except Exception as exc:  # the libraries may also be on the system's path: the session says
            logging.getLogger(__name__).info("onnxruntime.preload_dlls(): %s", exc)
    chosen = [p if isinstance(p, str) else list(p) for p in providers]
    report: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                    "onnxruntime": ort.__version__, "available_providers": ort.get_available_providers(),
                    "device": args.device, "providers": chosen,
                    "threads": args.threads, "quick": args.quick, "g1": [], "g2": [], "g3": [],
                    "skipped": []}  # fmt: skip
    bundles = find_bundles(args.model_repository, args)
    for role, folder in bundles.items():
        if folder is None:
            report["skipped"].append(f"no {role} bundle under {args.model_repository} (g1, g2)")
            continue
        print(f"g1 {role}: {folder}", flush=True)
        report["g1"] += g1(role, folder, providers, cuda, args)
    alone = {(r["model"], r["batch"], r["mode"]): r["records_per_s"] for r in report["g1"]
             if "error" not in r}  # fmt: skip
    for role in ("conv", "dense"):
        if bundles[role] is not None:
            print(f"g2 {role}: {bundles[role]}", flush=True)
            report["g2"] += g2(role, bundles[role], providers, args, alone)
    if args.no_kafka:
        report["skipped"].append("g3: --no-kafka" + (" (--quick)" if args.quick else ""))
    elif not shutil.which("java"):
        report["skipped"].append("g3: no java on this machine (a local broker needs it)")
    elif bundles["conv"] is None:
        report["skipped"].append("g3: no conv bundle")
    else:
        print("g3: the worker on a local broker", flush=True)
        report["g3"] = g3(bundles["conv"], args)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
