"""Settings of `python -m training train` and `evaluate`: CLI flags over TRAINING_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, CliPositionalArg, SettingsConfigDict

from schemas.detect import DetectorParams
from training.data.mnist import BUNDLED_DIR

_COMMON = dict(env_prefix="TRAINING_", cli_kebab_case=True, frozen=True, cli_implicit_flags=True)


class TrainSettings(BaseSettings):
    """Fit a VAE (on normal digits, or on KPI series from CSV), calibrate its threshold, export an ONNX
    bundle, evaluate it. Options marked (csv) are for --dataset csv only; the others apply to both."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training train", **_COMMON)

    dataset: Literal["mnist", "csv"] = Field(
        "mnist",
        description="training data: MNIST digits (images), or KPI series from --data (metrics, a "
        "dense VAE over windows of --window points, compared with a rolling z-score baseline)",
    )
    data_dir: Path = Field(BUNDLED_DIR, description="folder with the four MNIST IDX .gz files")
    data: Path | None = Field(
        None,
        description="(csv) a long CSV file series,timestamp,value[,label[,kind]] or a folder of "
        "per-series CSV files timestamp,value[,label] (series name = file name); labels are used "
        "for evaluation only",
    )
    window: int = Field(32, ge=4, le=10_000, description="(csv) W: points per window the model sees")
    hidden: str = Field("100,100", description="(csv) hidden layer widths of the dense encoder (and decoder)")
    score_points: int = Field(
        1, ge=1, description="(csv) score = mean squared reconstruction error of the window's last N points"
    )
    split: str = Field(
        "50,20,30",
        description="(csv) train,validation,test percentages of each series, in time order; the "
        "validation part is for early stopping and calibration, the test part for evaluation",
    )
    reset_gap: int | None = Field(
        None,
        ge=1,
        description="(csv) a gap of this many missing points or more restarts a series' window "
        "(default: --window); shorter gaps are filled linearly and masked out of the loss",
    )
    clip: float = Field(20.0, gt=0, description="(csv) normalised values are clipped to [-clip, clip]")
    missing_injection: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="(csv) share of training points hidden from the model at random each batch "
        "(Donut's missing-data injection; 0 = off)",
    )
    context_anomalies: float = Field(
        0.3,
        ge=0,
        le=1,
        description="(csv) share of training windows given a random bump before the scored point, "
        "the loss still on the clean window: an anomaly then does not keep raising the scores of "
        "the W points after it (0 = off)",
    )
    alert_threshold: float = Field(
        DetectorParams().threshold,
        gt=0,
        description="(csv) a point alerts when its largest surprise reaches this: -log10 of the tail "
        "probability of one part's score among that series' own recent ones (3 = 1 in 1,000)",
    )
    adapt_halflife: float = Field(
        DetectorParams().adapt_halflife,
        gt=1,
        description="(csv) half-life, in points, of each series' score statistics: how fast the "
        "thresholds follow a series that changes",
    )
    warmup: int = Field(
        DetectorParams().warmup,
        ge=0,
        description="(csv) points a new series only learns from (after its first window) before it alerts",
    )
    delay: int | None = Field(
        None,
        ge=0,
        description="(csv) evaluation: a labelled segment counts as detected only if alerted within "
        "its first DELAY+1 points (default: no limit, as Donut reports)",
    )
    normal: str = Field("1,4", description="normal digits, comma-separated: the model trains on these only")
    anomaly: str = Field("5", description="anomaly digits, for evaluation only")
    out: Path | None = Field(
        None,
        description="bundle folder <repository>/<name>/<version>; must not exist "
        "(default: models/mnist-vae/<next version>, or models/kpi-vae/<next version> with --dataset csv)",
    )
    name: str | None = Field(
        None, description="model name in the manifest (default: the --out parent folder)"
    )
    arch: Literal["conv", "dense"] = Field("conv", description="convolutional or dense encoder/decoder")
    latent_dim: int = Field(16, ge=1, le=512, description="size of the latent space")
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term in the ELBO")
    epochs: int = Field(20, ge=1, le=1000, description="most epochs (early stopping may end sooner)")
    patience: int = Field(5, ge=1, description="epochs without a better validation loss before stopping")
    batch_size: int = Field(128, ge=1, description="training batch size")
    lr: float = Field(2e-3, gt=0, description="peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = Field(0.05, ge=0, description="AdamW weight decay")
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="share of training normals held out for "
        "early stopping (and calibration with --calibrate-on val)",
    )
    seed: int = Field(0, description="seed for the split, initialisation and batches")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="torch device; auto = cuda if present")
    score: Literal["bce-excess", "bce"] = Field(
        "bce-excess",
        description="anomaly score: summed BCE minus the input's own entropy (0 for a "
        "perfect reconstruction), or the raw summed BCE of the published tutorial",
    )
    calibration: Literal["percentile", "mean-std"] = Field("percentile", description="threshold method")
    percentile: float = Field(
        99.0, gt=0, lt=100, description="--calibration percentile: this percentile of normal scores"
    )
    k: float = Field(3.0, description="--calibration mean-std: threshold = mean + k * std")
    calibrate_on: Literal["all", "train", "val"] = Field(
        "all",
        description="normal scores to calibrate on: all training-set normals, or one split "
        "(csv: always the validation part of each series)",
    )
    report: bool = Field(True, description="draw the PNG figures into the bundle")
    progress: bool = Field(True, description="show a progress bar")

    def out_dir(self) -> Path:
        if self.out is not None:
            return self.out
        repo = Path("models") / (self.name or ("kpi-vae" if self.dataset == "csv" else "mnist-vae"))
        versions = [int(p.name) for p in repo.glob("*") if p.is_dir() and p.name.isdigit()]
        return repo / str(max(versions, default=0) + 1)

    def model_name(self) -> str:
        return self.name or self.out_dir().resolve().parent.name

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

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
        return self.device


class BenchmarkSettings(TrainSettings):
    """Learn from the first part of each series only, then score every point as the worker would and
    compare with classic detectors (NAB's protocol: learn from the first 15%, score the rest)."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training benchmark", **_COMMON)

    dataset: Literal["csv"] = Field("csv", description="always csv: KPI series from --data")
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
    data_dir: Path = Field(BUNDLED_DIR, description="folder with the four MNIST IDX .gz files")
    data: Path | None = Field(
        None, description="metric bundles: the CSV to score (default: the one the manifest names)"
    )


class SynthSettings(BaseSettings):
    """Write labelled synthetic KPI series (seasonality, trend, noise, injected anomalies) as CSV."""

    model_config = SettingsConfigDict(cli_prog_name="python -m training synth", **_COMMON)

    out: Path = Field(..., description="folder to write kpi.csv into (series,timestamp,value,label,kind)")
    profile: Literal["stationary", "nonstationary", "heldout"] = Field(
        "stationary",
        description="stationary: one level, fixed cycles, one noise size (demos, tests); nonstationary: "
        "drift, trends, changing noise and cycles, counts near zero, bursts, jitter and gaps (the tuning "
        "set; also writes series.json); heldout: a fixed preset with its own seed and parameters, never "
        "used for tuning (--series, --days, --seed, --interval-minutes, --anomalies-per-week not allowed)",
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
