"""MNIST: fit -> export + parity -> calibrate on the graph's scores -> evaluate -> report -> manifest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from schemas import MODEL_FILE, Calibration, ImagePreprocessing, ModelManifest, ScoreSpec, TensorSpec
from schemas.outputs import map_shape
from schemas.repository import refuse_existing
from training.core.bundle import new_manifest, read_manifest, store_reevaluation
from training.core.calibrate import calibrate
from training.core.fit import FitConfig, FitResult, seed_everything
from training.core.onnx_scoring import cpu_session, run_batched
from training.core.steps import write_bundle
from training.images import report
from training.images.evaluate import detection_metrics, detects, one_vs_rest_auroc
from training.images.export import SCORE_INPUT, check_image_parity, export_bundle_graphs
from training.images.fit import fit
from training.images.loss import SCORE_DESCRIPTIONS, SCORE_FUNCTIONS
from training.images.mnist import MnistSplit, load_split, scale_pixels
from training.images.models import VAE, build_model
from training.images.selection import (
    EvalSet,
    TrainValSplit,
    normal_train_val,
    parse_digits,
    protocol_eval_set,
)
from training.settings import ImageTrainSettings

PARITY_IMAGES = 1000


@dataclass
class Evaluation:
    metrics: dict[str, object]
    per_digit_auroc: dict[int, float]
    scores: np.ndarray
    labels: np.ndarray
    description: str
    protocol: EvalSet  # the images behind `scores` and `labels`
    test_scores: np.ndarray  # every test-set image, in test-set order

    def as_json(self) -> dict[str, object]:
        return {
            "protocol": self.description,
            "metrics": self.metrics,
            "auroc_one_vs_rest": {str(d): a for d, a in self.per_digit_auroc.items()},
        }


@dataclass
class TrainedBundle:
    folder: Path
    manifest: ModelManifest
    evaluation: Evaluation
    model: VAE  # the torch model the graphs were exported from, on the CPU

    def __repr__(self) -> str:  # short: test reports print fixtures, and a model prints its tensors
        return f"TrainedBundle({self.folder}, {self.manifest.name}:{self.manifest.version})"


@dataclass(frozen=True)
class Digits:
    """The MNIST splits and which digits are normal and anomalous in this run."""

    train: MnistSplit
    test: MnistSplit
    normal: tuple[int, ...]
    anomaly: tuple[int, ...]

    @classmethod
    def load(cls, data_dir: Path, normal: tuple[int, ...], anomaly: tuple[int, ...]) -> Digits:
        return cls(load_split("train", data_dir), load_split("test", data_dir), normal, anomaly)


def train_bundle(s: ImageTrainSettings) -> TrainedBundle:
    """The whole training run; the bundle appears at `s.out_dir()` only if every step succeeded."""
    normal, anomaly = parse_digits(s.normal, "normal"), parse_digits(s.anomaly, "anomaly")
    if set(normal) & set(anomaly):
        raise ValueError(f"--normal {s.normal} and --anomaly {s.anomaly} share a digit")
    out = s.out_dir()
    refuse_existing(out)  # before a minute of training, not after
    digits = Digits.load(s.data_dir, normal, anomaly)
    split = normal_train_val(digits.train, normal, s.val_fraction, s.seed)
    model, fitted = fit_model(s, split, normal)
    steps = ImageSteps(s, out, digits, split, model, fitted)
    manifest = write_bundle(out, steps, fitted, s.report)
    return TrainedBundle(out, manifest, steps.evaluation, model)


def fit_model(s: ImageTrainSettings, split: TrainValSplit, normal: tuple[int, ...]) -> tuple[VAE, FitResult]:
    seed_everything(s.seed)
    model = build_model(s.arch, split.train.shape[1:], s.latent_dim)
    cfg = FitConfig.from_settings(s)
    print(
        f"training a {s.arch} VAE (latent {s.latent_dim}, beta {s.beta}) on {len(split.train)} images of "
        f"digits {list(normal)}, validating on {len(split.val)}, device {cfg.device}"
    )
    fitted = fit(model, split.train, split.val, cfg, progress=s.progress)
    return model.cpu().eval(), fitted


@dataclass
class ImageSteps:
    """The core's steps (training.core.steps) for an image VAE, in the order write_bundle calls them."""

    s: ImageTrainSettings
    out: Path
    digits: Digits
    split: TrainValSplit
    model: VAE
    fitted: FitResult
    calibration: Calibration | None = None  # set by calibrate
    evaluation: Evaluation | None = None  # set by evaluate

    def export(self, folder: Path) -> None:
        score_function = SCORE_FUNCTIONS[self.s.score]
        export_bundle_graphs(self.model, score_function, folder)
        parity = self.digits.test.images[:PARITY_IMAGES]
        check_image_parity(self.model, score_function, folder / MODEL_FILE, parity)

    def calibrate(self, model_path: Path) -> None:
        self.calibration = calibrate_graph(self.s, model_path, self.split, self.digits.normal)

    def evaluate(self, model_path: Path) -> dict[str, object]:
        self.evaluation = evaluate_graph(model_path, self.calibration.threshold, self.digits)
        return self.evaluation.as_json()

    def report(self, folder: Path) -> None:
        write_figures(folder, self.model, self.evaluation, self.digits)

    def manifest(self, files: dict[str, str]) -> ModelManifest:
        return build_manifest(
            self.s, self.out, self.model, self.calibration, self.fitted, self.evaluation, files, self.split
        )


CALIBRATION_SETS = {
    "all": "all training-set normals",
    "train": "the training split",
    "val": "the validation split",
}


def calibrate_graph(
    s: ImageTrainSettings, model_path: Path, split: TrainValSplit, normal: tuple[int, ...]
) -> Calibration:
    """The threshold from the exported graph's scores of the normal images --calibrate-on names."""
    images = {"all": np.concatenate([split.train, split.val]), "train": split.train, "val": split.val}
    scores, _ = image_outputs(cpu_session(model_path), images[s.calibrate_on])
    data = f"{CALIBRATION_SETS[s.calibrate_on]} of digits {list(normal)}, scored by the exported graph"
    return calibrate(scores, s.calibration, s.percentile, s.k, data=data)


def image_outputs(session: ort.InferenceSession, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64, reconstructions) of uint8 images, pre-processed as the worker does."""
    scores, recons = run_batched(session, scale_pixels(images_u8), ("score", "reconstruction"))
    return scores.astype(np.float64), recons


def evaluate_graph(model_path: Path, threshold: float, digits: Digits) -> Evaluation:
    """The published protocol and one-vs-rest AUROCs, scored by onnxruntime alone (each image once)."""
    session = cpu_session(model_path)
    train, test, normal = digits.train, digits.test, digits.normal
    proto = protocol_eval_set(train, test, normal, digits.anomaly)
    scores, _ = image_outputs(session, proto.images)
    test_scores, _ = image_outputs(session, test.images)
    metrics = detection_metrics(scores, proto.labels, threshold)
    per_digit = one_vs_rest_auroc(test_scores, test.labels, normal)
    if per_digit:  # the test set may hold no label but the normal ones (a user's own images)
        metrics["auroc_one_vs_rest_mean"] = float(np.mean(list(per_digit.values())))
    return Evaluation(metrics, per_digit, scores, proto.labels, proto.description, proto, test_scores)


def write_figures(folder: Path, model: VAE, ev: Evaluation, digits: Digits) -> None:
    session = cpu_session(folder / MODEL_FILE)
    proto, test = ev.protocol, digits.test
    n_idx = np.flatnonzero(proto.labels == 0)[:10]
    a_idx = np.flatnonzero(proto.labels == 1)[:10]
    _, n_rec = image_outputs(session, proto.images[n_idx])
    _, a_rec = image_outputs(session, proto.images[a_idx])
    report.reconstructions(
        proto.images[n_idx] / 255.0, n_rec, proto.images[a_idx] / 255.0, a_rec, folder / "reconstructions.png"
    )
    report.score_histogram(ev.scores, ev.labels, ev.metrics["threshold"], folder / "score_histogram.png")
    if detects(ev.metrics):  # a ROC curve needs anomalies too
        report.roc(ev.scores, ev.labels, ev.metrics["roc_auc_scores"], folder / "roc_curve.png")
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(test.images[:5000].astype(np.float32) / 255.0))
    report.latent_pca(mu.numpy(), test.labels[:5000], digits.normal, folder / "latent_pca.png")
    report.top_anomalies(test.images / 255.0, ev.test_scores, test.labels, folder / "top_anomalies.png")


def build_manifest(
    s: ImageTrainSettings,
    out: Path,
    model: VAE,
    cal: Calibration,
    fitted: FitResult,
    ev: Evaluation,
    files: dict[str, str],
    split: TrainValSplit,
) -> ModelManifest:
    h, w = model.image_shape
    score_fn = SCORE_FUNCTIONS[s.score]
    return new_manifest(
        s.model_name(),
        out,
        files,
        kind="image",
        input=TensorSpec(name=SCORE_INPUT, shape=[h, w]),
        outputs={
            "score": TensorSpec(name="score", shape=[]),
            "reconstruction": TensorSpec(name="reconstruction", shape=[h, w]),
            "anomaly_map": TensorSpec(name="anomaly_map", shape=list(map_shape((h, w)))),
        },
        preprocessing=ImagePreprocessing(record_shape=[h, w]),
        score=ScoreSpec(function=score_fn, description=SCORE_DESCRIPTIONS[score_fn]),
        threshold=cal.threshold,
        calibration=cal,
        severity="calibration-span",
        training={
            "dataset": s.dataset,
            "data_dir": str(s.data_dir),
            "normal_digits": list(parse_digits(s.normal, "normal")),
            "anomaly_digits": list(parse_digits(s.anomaly, "anomaly")),
            "train_images": len(split.train),
            "val_images": len(split.val),
            **model.config(),
            "beta": s.beta,
            "epochs": s.epochs,
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "weight_decay": s.weight_decay,
            "seed": s.seed,
            "seconds": round(fitted.seconds, 1),
            "device": s.torch_device(),
        },
        metrics=finite_metrics(ev.metrics),
    )


def finite_metrics(metrics: dict[str, object]) -> dict[str, float]:
    """The numbers of `metrics` the manifest can hold: it refuses NaN, which a metric of a class the
    data lacks would be."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, float | int) and math.isfinite(v)}


def evaluate_bundle(bundle: Path, data_dir: Path) -> tuple[ModelManifest, Evaluation]:
    """Re-score a bundle with onnxruntime on the protocol its manifest names."""
    manifest = read_manifest(bundle)
    normal = tuple(manifest.training["normal_digits"])  # type: ignore[arg-type]
    anomaly = tuple(manifest.training["anomaly_digits"])  # type: ignore[arg-type]
    digits = Digits.load(data_dir, normal, anomaly)
    ev = evaluate_graph(bundle / manifest.model_file, manifest.threshold, digits)
    store_reevaluation(bundle, ev.as_json())
    return manifest, ev
