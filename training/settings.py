"""Settings of `python -m training`'s commands: CLI flags over TRAINING_* variables.

`train` takes one of two typed models, chosen by --dataset (or TRAINING_DATASET): MNIST images
(`ImageTrainSettings`, the default) or KPI series from CSV (`KpiTrainSettings`). Both extend
`TrainSettings`, the options every VAE run shares, so `--help` lists exactly what applies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg, SettingsConfigDict

from schemas.detect import DetectorParams
from schemas.manifest import CalibrationMethod
from schemas.repository import next_version_folder
from schemas.settings import SettingsError
from training.images.mnist import BUNDLED_DIR

_COMMON = dict(env_prefix="TRAINING_", cli_kebab_case=True, frozen=True, cli_implicit_flags=True,
               cli_hide_none_type=True)  # --help: `str`, not `{str,null}`
MODEL_REPOSITORY = Path("models")  # where a bundle goes without --out


class TrainSettings(BaseSettings):
    """The options of every training run: where the bundle goes, the VAE's size and the optimisation."""

    model_config = SettingsConfigDict(**_COMMON)
    default_name: ClassVar[str]  # the model name without --name or --out

    out: Path | None = Field(
        None,
        description="bundle folder <repository>/<name>/<version>; must not exist (default: "
        "models/<name>/<next version>, the version after the highest numbered one)",
    )
    name: str | None = Field(
        None,
        description="model name in the manifest (default: the --out parent folder; without --out, "
        "mnist-vae for images and kpi-vae for KPI series)",
    )
    latent_dim: int = Field(16, ge=1, le=512, description="size of the latent space")
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term in the ELBO")
    epochs: int = Field(20, ge=1, le=1000, description="most epochs (early stopping may end sooner)")
    patience: int = Field(5, ge=1, description="epochs without a better validation loss before stopping")
    batch_size: int = Field(128, ge=1, description="training batch size")
    lr: float = Field(2e-3, gt=0, description="peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    seed: int = Field(0, description="seed for the split, initialisation and batches")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="torch device; auto = cuda if present")
    report: bool = Field(True, description="draw the PNG figures into the bundle")
    progress: bool = Field(True, description="show a progress bar")

    def out_dir(self) -> Path:
        if self.out is not None:
            return self.out
        return next_version_folder(MODEL_REPOSITORY, self.name or self.default_name)

    def model_name(self) -> str:
        return self.name or self.out_dir().resolve().parent.name

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
        return self.device


class ImageTrainSettings(TrainSettings):
    """Fit a VAE on normal MNIST digits, export it to ONNX, calibrate its threshold on the exported
    graph's scores, evaluate it, and write the bundle. KPI series: add --dataset csv (and --help)."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training train", **_COMMON)
    default_name: ClassVar[str] = "mnist-vae"

    dataset: Literal["mnist"] = Field(
        "mnist",
        description="MNIST digits (images); --dataset csv trains on KPI series instead, with other "
        "options: see python -m training train --dataset csv --help",
    )
    data_dir: Path = Field(BUNDLED_DIR, description="folder with the four MNIST IDX .gz files")
    normal: str = Field("1,4", description="normal digits, comma-separated: the model trains on these only")
    anomaly: str = Field("5", description="anomaly digits, for evaluation only")
    arch: Literal["conv", "dense"] = Field("conv", description="convolutional or dense encoder/decoder")
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="share of training normals held out for "
        "early stopping (and calibration with --calibrate-on val)",
    )
    score: Literal["bce-excess", "bce"] = Field(
        "bce-excess",
        description="anomaly score: summed BCE minus the input's own entropy (0 for a "
        "perfect reconstruction), or the raw summed BCE of the published tutorial",
    )
    calibration: CalibrationMethod = Field("percentile", description="threshold method")
    percentile: float = Field(
        99.0, gt=0, lt=100, description="--calibration percentile: this percentile of normal scores"
    )
    k: float = Field(3.0, description="--calibration mean-std: threshold = mean + k * std")
    calibrate_on: Literal["all", "train", "val"] = Field(
        "all", description="normal scores to calibrate on: all training-set normals, or one split"
    )


class KpiTrainSettings(TrainSettings):
    """Fit a dense VAE over windows of KPI series from CSV, export it to ONNX, fit the detector's
    thresholds on the exported graph's scores, compare it with classic detectors, write the bundle."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training train --dataset csv", **_COMMON)
    default_name: ClassVar[str] = "kpi-vae"

    dataset: Literal["csv"] = Field(
        "csv",
        description="KPI series from --data (metrics): a dense VAE over windows of --window points, "
        "compared with a rolling z-score and a Hampel baseline",
    )
    data: Path | None = Field(
        None,
        description="a long CSV file series,timestamp,value[,label[,kind]] or a folder of "
        "per-series CSV files timestamp,value[,label], subfolders included (series name = the file's "
        "path below the folder, without .csv); labels are used for evaluation only",
    )
    labels: Path | None = Field(
        None,
        description="a JSON label file in NAB's layout for --data's series (combined_windows.json: "
        '{"<folder>/<file>.csv": [[start, end], ...]}, or combined_labels.json: times), for series without '
        "a label column; evaluation only",
    )
    window: int = Field(32, ge=4, le=10_000, description="W: points per window the model sees")
    hidden: str = Field("100,100", description="hidden layer widths of the dense encoder (and decoder)")
    score_points: int = Field(
        1, ge=1, description="score = mean squared reconstruction error of the window's last N points"
    )
    split: str = Field(
        "50,20,30",
        description="train,validation,test percentages of each series, in time order; the "
        "validation part is for early stopping and calibration, the test part for evaluation",
    )
    reset_gap: int | None = Field(
        None,
        ge=1,
        description="a gap of this many missing points or more restarts a series' window "
        "(default: --window); shorter gaps are filled linearly and masked out of the loss",
    )
    clip: float = Field(20.0, gt=0, description="normalised values are clipped to [-clip, clip]")
    max_duplicate_percent: float = Field(
        5.0,
        ge=0,
        le=100,
        description="a point in a grid slot that already has one is dropped (and counted); past this "
        "share of all points training stops, as that many usually mean several series were read as "
        "one (no series column) or timestamps finer than the grid",
    )
    missing_injection: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="share of training points hidden from the model at random each batch "
        "(Donut's missing-data injection; 0 = off)",
    )
    context_anomalies: float = Field(
        0.3,
        ge=0,
        le=1,
        description="share of training windows given a random bump before the scored point, "
        "the loss still on the clean window: an anomaly then does not keep raising the scores of "
        "the W points after it (0 = off)",
    )
    alert_threshold: float = Field(
        DetectorParams().threshold,
        gt=0,
        description="a point alerts when its largest surprise reaches this: -log10 of the tail "
        "probability of one part's score among that series' own recent ones (4 = 1 in 10,000)",
    )
    adapt_halflife: float = Field(
        DetectorParams().adapt_halflife,
        gt=1,
        description="half-life, in points, of each series' score statistics: how fast the "
        "thresholds follow a series that changes",
    )
    warmup: int = Field(
        DetectorParams().warmup,
        ge=0,
        description="points a new series only learns from (after its first window) before it alerts",
    )
    delay: int | None = Field(
        None,
        ge=0,
        description="evaluation: a labelled segment counts as detected only if alerted within "
        "its first DELAY+1 points (default: no limit, as Donut reports)",
    )

    def hidden_sizes(self) -> tuple[int, ...]:
        try:
            sizes = tuple(int(h) for h in self.hidden.split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--hidden {self.hidden!r}: give positive layer widths, e.g. 100,100")
        return sizes

    def split_fractions(self) -> tuple[float, float]:
        """(train, validation) shares of each series; the test part is the rest."""
        try:
            parts = [float(p) for p in self.split.split(",")]
        except ValueError:
            parts = []
        if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 100) > 1e-6:
            raise ValueError(f"--split {self.split!r}: give three positive percentages that sum to 100")
        return parts[0] / 100, parts[1] / 100


TRAIN_SETTINGS: dict[str, type[TrainSettings]] = {"mnist": ImageTrainSettings, "csv": KpiTrainSettings}


def train_settings_for(argv: list[str]) -> type[TrainSettings]:
    """The settings model `train` parses with: --dataset on the command line, else TRAINING_DATASET, else
    MNIST. Read before parsing, so that --help lists the options of that kind only."""
    dataset = os.environ.get("TRAINING_DATASET", "mnist")
    for i, arg in enumerate(argv):
        if arg == "--dataset" and i + 1 < len(argv):
            dataset = argv[i + 1]
        elif arg.startswith("--dataset="):
            dataset = arg.split("=", 1)[1]
    if dataset not in TRAIN_SETTINGS:
        raise SettingsError(
            f"invalid --dataset / TRAINING_DATASET: use {' or '.join(TRAIN_SETTINGS)} (got {dataset!r})"
        )
    chosen = TRAIN_SETTINGS[dataset]
    for arg in argv:  # an option of the other kind of training: name the one that has it
        flag = arg.split("=", 1)[0]
        field = flag[2:].replace("-", "_") if flag.startswith("--") else ""
        other = next((k for k, m in TRAIN_SETTINGS.items() if k != dataset and field in m.model_fields), None)
        if field and field not in chosen.model_fields and other:
            raise SettingsError(
                f"{flag} is an option of --dataset {other} training, and this is --dataset {dataset}: "
                f"did you mean `python -m training train --dataset {other} {flag} ...`?"
            )
    return chosen


class BenchmarkSettings(KpiTrainSettings):
    """Learn from the first part of each series only, then score every point as the worker would and
    compare with classic detectors (NAB's protocol: learn from the first 15%, score the rest)."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training benchmark", **_COMMON)

    learn_percent: float = Field(
        15.0, gt=0, lt=100, description="the bundle trains on this first share of each series' points only"
    )
    split: str = Field(
        "67,32,1",
        description="train,validation,test percentages of that first share (the evaluation is of every "
        "point after it)",
    )


class EvaluateSettings(BaseSettings):
    """Re-score a bundle with plain onnxruntime on the evaluation protocol its manifest names."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training evaluate", **_COMMON)

    bundle: CliPositionalArg[Path] = Field(description="bundle folder holding manifest.json and model.onnx")
    data_dir: Path = Field(BUNDLED_DIR, description="image bundles: folder with the four MNIST IDX .gz files")
    data: Path | None = Field(
        None, description="metric bundles: the CSV to score (default: the one the manifest names)"
    )
    labels: Path | None = Field(
        None,
        description="metric bundles: a JSON label file in NAB's layout for --data's series "
        "(combined_windows.json or combined_labels.json: see python -m training train --dataset csv --help)",
    )


class PublishSettings(BaseSettings):
    """Publish a bundle as a new version of its model, atomically: the worker never sees it half-copied."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training publish", **_COMMON)

    bundle: CliPositionalArg[Path] = Field(
        description="the bundle folder to publish, <repository>/<name>/<version> (it is checked first)"
    )
    version: str | None = Field(
        None,
        description="the new version's name; default: one more than the highest numbered version of "
        "the model. The copy goes beside the bundle, its manifest saying the new version (re-signed)",
    )


class SynthSettings(BaseSettings):
    """Write labelled synthetic KPI series (seasonality, trend, noise, injected anomalies) as CSV."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training synth", **_COMMON)

    out: Path = Field(..., description="folder to write kpi.csv into (series,timestamp,value,label,kind)")
    profile: Literal["stationary", "nonstationary", "heldout", "clean"] = Field(
        "stationary",
        description="stationary: one level, fixed cycles, one noise size (demos, tests); nonstationary: "
        "drift, trends, changing noise and cycles, counts near zero, bursts, jitter and gaps (the tuning "
        "set; also writes series.json); heldout: a fixed preset with its own seed and parameters, never "
        "used for tuning (--series, --days, --seed, --interval-minutes, --anomalies-per-week not allowed); "
        "clean: a sine, a square wave, a constant, white noise and a random walk with nothing to find",
    )
    series: int = Field(10, ge=1, le=100_000, description="how many series")
    days: int = Field(14, ge=2, le=3650, description="days per series (the first day has no anomalies)")
    interval_minutes: int = Field(
        5, ge=1, le=1440, description="sampling interval (nonstationary: must divide a day)"
    )
    seed: int = Field(0, description="random seed")
    anomalies_per_week: float | None = Field(
        None,
        ge=0,
        le=1000,
        description="anomaly windows per series and week (default: 6 stationary, 1.5 nonstationary)",
    )
