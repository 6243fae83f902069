"""`python -m training train|evaluate`: one-line errors, the traceback only with TRAINING_DEBUG=1."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from schemas.settings import SettingsError, load_settings

USAGE = """usage: python -m training {train,evaluate,synth} [options]

Fit a variational autoencoder on normal data, calibrate its threshold, export
it to ONNX with a manifest (a model bundle the worker loads), and evaluate it.

commands:
  train      train, calibrate, export, verify and evaluate a bundle
  evaluate   re-score a bundle with plain onnxruntime and print the table
  synth      write labelled synthetic KPI series (for the metric path's demos and tests)

'python -m training COMMAND --help' lists every option of a command; each one
can also be set as an environment variable TRAINING_<OPTION> (e.g. TRAINING_EPOCHS=30).
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    commands = {"train": train, "evaluate": evaluate, "synth": synth}
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
    from training.evaluate import format_table, meets_targets
    from training.pipeline import train_bundle
    from training.settings import TrainSettings

    settings = load_settings(TrainSettings, argv)
    if settings.dataset == "csv":
        return train_kpi(settings)
    t0 = time.monotonic()
    trained = train_bundle(settings)
    manifest, ev, out = trained.manifest, trained.evaluation, trained.folder
    print(f"\n{ev.description}\n")
    print(format_table(ev.metrics, ev.per_digit_auroc))
    verdict = "meets" if meets_targets(ev.metrics) else "does NOT meet"
    print(f"\nthe model {verdict} the bar (accuracy >= 0.985, F1 >= 0.985, ROC AUC >= 0.998)")
    print(
        f"bundle {out} ({manifest.name} version {manifest.version}, threshold {manifest.threshold:.2f}) "
        f"written in {time.monotonic() - t0:.0f} s"
    )
    return 0


def train_kpi(settings) -> int:
    from training.kpi.pipeline import train_kpi_bundle

    t0 = time.monotonic()
    trained = train_kpi_bundle(settings)
    manifest, ev, out = trained.manifest, trained.evaluation, trained.folder
    print(f"\n{ev.table()}\n\n{ev.verdict()}")
    per_series = " (per-series thresholds in the manifest)" if settings.per_series_threshold else ""
    print(
        f"bundle {out} ({manifest.name} version {manifest.version}, W {ev.window}, model-wide threshold "
        f"{manifest.threshold:.4g}{per_series}) written in {time.monotonic() - t0:.0f} s"
    )
    return 0


def evaluate(argv: list[str]) -> int:
    from training.evaluate import format_table
    from training.pipeline import evaluate_bundle
    from training.settings import EvaluateSettings

    settings = load_settings(EvaluateSettings, argv)
    bundle = Path(settings.bundle)
    if not (bundle / "manifest.json").is_file():
        raise ValueError(f"{bundle} is not a bundle (no manifest.json); pass a <name>/<version> folder")
    if json.loads((bundle / "manifest.json").read_text()).get("kind") == "metric":
        from training.kpi.pipeline import evaluate_kpi_bundle

        manifest, kev = evaluate_kpi_bundle(bundle, settings.data)
        print(f"{manifest.name} version {manifest.version}, scored by onnxruntime:\n\n{kev.table()}")
        print(f"\n{kev.verdict()}")
        return 0
    manifest, ev = evaluate_bundle(bundle, settings.data_dir)
    print(f"{manifest.name} version {manifest.version}: {ev.description}\n")
    print(format_table(ev.metrics, ev.per_digit_auroc))
    return 0


def synth(argv: list[str]) -> int:
    from training.data.synth import synthesize
    from training.settings import SynthSettings

    s = load_settings(SynthSettings, argv)
    path = synthesize(s.out, s.series, s.days, s.seed, s.interval_minutes)
    print(f"wrote {s.series} series x {s.days} days at {s.interval_minutes}-minute steps to {path}")
    return 0
