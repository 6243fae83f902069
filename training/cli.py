"""`python -m training train|evaluate|benchmark|synth`: one-line errors, the traceback only with
TRAINING_DEBUG=1."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from schemas import ModelManifest
    from training.images.pipeline import Evaluation
    from training.settings import ImageTrainSettings, KpiTrainSettings

USAGE = """usage: python -m training {train,evaluate,benchmark,synth,publish} [options]

Fit a variational autoencoder on normal data, export it to ONNX, calibrate its
threshold on the exported graph's scores, evaluate it, and write it with a
manifest (a model bundle the worker loads).

commands:
  train      fit, export (checking torch/onnxruntime parity), calibrate on the exported graph's
             scores and evaluate a bundle: MNIST images by default, KPI series with --dataset csv
  evaluate   re-score a bundle with plain onnxruntime and print the table
  benchmark  KPI series: train on the first 15% of each series, score the rest as the worker
             would, and compare with classic detectors (NAB's rules and point-adjusted F1)
  synth      write labelled synthetic KPI series (for the metric path's demos and tests)
  publish    copy a bundle as a new version of its model (a rollback, or a bundle made elsewhere),
             checked first and renamed into place whole, so a running worker takes it at its next look

'python -m training COMMAND --help' lists every option of a command ('train
--dataset csv --help' those of KPI training); each one can also be set as an
environment variable TRAINING_<OPTION> (e.g. TRAINING_EPOCHS=30).
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    commands = {"train": train, "evaluate": evaluate, "benchmark": benchmark, "synth": synth,
                "publish": publish}  # fmt: skip
    if command not in commands:
        print(
            f"training: unknown command {command!r}; use {', '.join(commands)} (see --help)", file=sys.stderr
        )
        return 2
    try:
        return commands[command](rest)
    except SettingsError as exc:
        print(f"training {command}: {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:  # FileExistsError is an OSError
        if os.environ.get("TRAINING_DEBUG"):
            raise
        print(f"training {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"training {command}: interrupted; no bundle was written", file=sys.stderr)
        return 130


def train(argv: list[str]) -> int:
    from training.settings import KpiTrainSettings, train_settings_for

    settings = load_settings(train_settings_for(argv), argv)
    if isinstance(settings, KpiTrainSettings):
        return train_kpi(settings)
    return train_images(settings)


def train_images(settings: ImageTrainSettings) -> int:
    from training.images.pipeline import train_bundle

    t0 = time.monotonic()
    trained = train_bundle(settings)
    manifest, ev, out = trained.manifest, trained.evaluation, trained.folder
    print(f"\n{ev.description}\n")
    print_image_evaluation(manifest, ev)
    print(
        f"bundle {out} ({manifest.name} version {manifest.version}, threshold {manifest.threshold:.2f}) "
        f"written in {time.monotonic() - t0:.0f} s"
    )
    return 0


def train_kpi(settings: KpiTrainSettings) -> int:
    from training.kpi.pipeline import train_kpi_bundle

    t0 = time.monotonic()
    trained = train_kpi_bundle(settings)
    manifest, ev, out = trained.manifest, trained.evaluation, trained.folder
    print(f"\n{ev.table()}\n\n{ev.verdict()}")
    print(
        f"bundle {out} ({manifest.name} version {manifest.version}, W {manifest.input.shape[0]}, alert at a "
        f"surprise of {manifest.threshold:g}: a tail probability of 1e-{manifest.threshold:g}) written in "
        f"{time.monotonic() - t0:.0f} s"
    )
    return 0


def evaluate(argv: list[str]) -> int:
    from schemas import MANIFEST_FILE
    from training.settings import EvaluateSettings

    settings = load_settings(EvaluateSettings, argv)
    bundle = Path(settings.bundle)
    if not (bundle / MANIFEST_FILE).is_file():
        raise ValueError(f"{bundle} is not a bundle (no {MANIFEST_FILE}); pass a <name>/<version> folder")
    if json.loads((bundle / MANIFEST_FILE).read_text()).get("kind") == "metric":
        from training.kpi.pipeline import evaluate_kpi_bundle

        manifest, kev = evaluate_kpi_bundle(bundle, settings.data, settings.labels)
        print(f"{manifest.name} version {manifest.version}, scored by onnxruntime as the worker scores:\n")
        print(kev.table())
        print(f"\n{kev.verdict()}")
        return 0
    from training.images.pipeline import evaluate_bundle

    manifest, ev = evaluate_bundle(bundle, settings.data_dir)
    print(f"{manifest.name} version {manifest.version}: {ev.description}\n")
    print_image_evaluation(manifest, ev)
    return 0


def print_image_evaluation(manifest: ModelManifest, ev: Evaluation) -> None:
    """The metrics table and the line under it; the published result and the bar only on their protocol."""
    from training.images.evaluate import format_table, on_published_protocol, verdict

    normal = tuple(manifest.training["normal_digits"])
    anomaly = tuple(manifest.training["anomaly_digits"])
    published = on_published_protocol(normal, anomaly, tuple(manifest.input.shape))
    print(format_table(ev.metrics, ev.per_digit_auroc, published))
    print(f"\n{verdict(ev.metrics, published, anomaly)}")


def publish(argv: list[str]) -> int:
    from schemas.repository import copy_as_version, next_version_folder, verified_manifest
    from training.settings import PublishSettings

    settings = load_settings(PublishSettings, argv)
    bundle = Path(settings.bundle).resolve()
    verified_manifest(bundle, own_folder=False)  # a ValueError naming the file and what is wrong
    version = settings.version or next_version_folder(bundle.parent.parent, bundle.parent.name).name
    if (bundle.parent / version).exists():
        raise ValueError(f"{bundle.parent / version} exists already: publish under another --version")
    out = copy_as_version(bundle, version)
    print(f"published {bundle.parent.name} version {version} at {out} (a copy of version {bundle.name}); "
          "a worker watching this repository checks it and takes it at its next look")  # fmt: skip
    return 0


def benchmark(argv: list[str]) -> int:
    from training.kpi.pipeline import benchmark_kpi
    from training.settings import BenchmarkSettings

    settings = load_settings(BenchmarkSettings, argv)
    t0 = time.monotonic()
    trained, ev = benchmark_kpi(settings)
    print(f"\n{ev.table()}\n\n{ev.verdict()}")
    print(f"bundle {trained.folder} (trained on the first {settings.learn_percent:g}% of each series); "
          f"{time.monotonic() - t0:.0f} s in all")  # fmt: skip
    return 0


def synth(argv: list[str]) -> int:
    from training.kpi.synth import heldout_config, synthesize, write_set
    from training.settings import SynthSettings

    s = load_settings(SynthSettings, argv)
    if s.profile == "heldout":
        preset = {"series", "days", "seed", "interval_minutes", "anomalies_per_week"}
        if fixed := sorted(s.model_fields_set & preset):
            flags = ", ".join("--" + f.replace("_", "-") for f in fixed)
            raise ValueError(
                "--profile heldout is a fixed preset (its own seed, series, days, intervals and anomaly "
                f"rate); drop {flags} (or the matching TRAINING_* variables)"
            )
        cfg = heldout_config()
        path = write_set(s.out, cfg)
        print(
            f"wrote the held-out set ({cfg.n_series} series x {cfg.days} days, seed {cfg.seed}) to {path}: "
            "never used for tuning, report it on its own line"
        )
        return 0
    path = synthesize(s.out, s.series, s.days, s.seed, s.interval_minutes, s.profile, s.anomalies_per_week)
    profile = "" if s.profile == "stationary" else f"{s.profile} "
    count = 5 if s.profile == "clean" else s.series
    print(f"wrote {count} {profile}series x {s.days} days at {s.interval_minutes}-minute steps to {path}")
    return 0
