"""train -> calibrate -> export -> verify -> evaluate -> report -> manifest, into one atomic bundle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from schemas import Calibration, ImagePreprocessing, ModelManifest, ScoreSpec, TensorSpec
from training import report
from training.bundle import (
    BundleExistsError,
    package_versions,
    read_manifest,
    staging_folder,
    write_manifest,
)
from training.calibrate import calibrate
from training.data.mnist import load_split
from training.data.selection import (
    EvalSet,
    TrainValSplit,
    normal_train_val,
    parse_digits,
    protocol_eval_set,
)
from training.evaluate import detection_metrics, one_vs_rest_auroc
from training.export import OPSET, SCORE_INPUT, export_bundle_graphs, torch_scores
from training.fit import FitConfig, FitResult, fit, score_images, seed_everything
from training.loss import SCORE_DESCRIPTIONS, SCORE_FUNCTIONS
from training.models import VAE, build_model
from training.onnx_scoring import cpu_session, onnx_outputs
from training.settings import TrainSettings

PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max |torch - onnx| relative to the score scale (the threshold)


class ParityError(RuntimeError):
    pass


@dataclass
class Evaluation:
    metrics: dict[str, object]
    per_digit_auroc: dict[int, float]
    scores: np.ndarray
    labels: np.ndarray
    description: str
    protocol: EvalSet  # the images behind `scores` and `labels`
    test_scores: np.ndarray  # every test-set image, in test-set order


@dataclass
class TrainedBundle:
    folder: Path
    manifest: ModelManifest
    evaluation: Evaluation
    model: VAE  # the torch model the graphs were exported from, on the CPU


def train_bundle(s: TrainSettings) -> TrainedBundle:
    """The whole training run; the bundle appears at `s.out_dir()` only if every step succeeded."""
    normal, anomaly = parse_digits(s.normal, "normal"), parse_digits(s.anomaly, "anomaly")
    if set(normal) & set(anomaly):
        raise ValueError(f"--normal {s.normal} and --anomaly {s.anomaly} share a digit")
    out = s.out_dir()
    if out.exists():  # fail before a minute of training, not after
        raise BundleExistsError(f"{out} already exists; pick a new version folder or delete it first")
    train, test = load_split("train", s.data_dir), load_split("test", s.data_dir)
    split = normal_train_val(train, normal, s.val_fraction, s.seed)
    score_fn = SCORE_FUNCTIONS[s.score]

    model, fitted = fit_model(s, split, normal)
    cal = calibrate_model(s, model, split, normal)
    with staging_folder(out) as folder:
        print("exporting ONNX graphs and checking torch/onnxruntime parity on real test images")
        export_bundle_graphs(model, score_fn, folder)
        check_parity(model, score_fn, folder / "model.onnx", test.images[:PARITY_IMAGES], cal.threshold)
        evaluation = evaluate_folder(folder / "model.onnx", cal.threshold, train, test, normal, anomaly)
        (folder / "evaluation.json").write_text(json.dumps(evaluation_json(evaluation), indent=2) + "\n")
        (folder / "history.json").write_text(json.dumps(fitted.as_dict(), indent=2) + "\n")
        if s.report:
            print("drawing the report figures")
            write_figures(folder, model, fitted, evaluation, train, test, normal, anomaly)
        manifest = write_manifest(
            folder, lambda files: build_manifest(s, out, model, cal, fitted, evaluation, files, split, normal)
        )
    return TrainedBundle(out, manifest, evaluation, model)


def fit_model(s: TrainSettings, split: TrainValSplit, normal: tuple[int, ...]) -> tuple[VAE, FitResult]:
    seed_everything(s.seed)
    model = build_model(s.arch, split.train.shape[1:], s.latent_dim)
    cfg = FitConfig(
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        beta=s.beta,
        weight_decay=s.weight_decay,
        seed=s.seed,
        patience=s.patience,
        device=s.torch_device(),
    )
    print(
        f"training a {s.arch} VAE (latent {s.latent_dim}, beta {s.beta}) on {len(split.train)} images of "
        f"digits {list(normal)}, validating on {len(split.val)}, device {cfg.device}"
    )
    fitted = fit(model, split.train, split.val, cfg, progress=s.progress)
    return model.cpu().eval(), fitted


def calibrate_model(
    s: TrainSettings, model: VAE, split: TrainValSplit, normal: tuple[int, ...]
) -> Calibration:
    images = {"all": np.concatenate([split.train, split.val]), "train": split.train, "val": split.val}
    described = {
        "all": "all training-set normals",
        "train": "the training split",
        "val": "the validation split",
    }
    scores = score_images(model, images[s.calibrate_on], SCORE_FUNCTIONS[s.score])
    data = f"{described[s.calibrate_on]} of digits {list(normal)}"
    return calibrate(scores, s.calibration, s.percentile, s.k, data=data)


def check_parity(
    model: VAE, score_fn: str, onnx_path: Path, images_u8: np.ndarray, threshold: float
) -> float:
    ref = torch_scores(model, score_fn, images_u8.astype(np.float32) * np.float32(1.0 / 255.0))
    got, _ = onnx_outputs(cpu_session(onnx_path), images_u8)
    if not np.isfinite(got).all():
        raise ParityError("the ONNX graph returned NaN or infinity on real images")
    diff = float(np.max(np.abs(ref - got)) / max(abs(threshold), 1.0))
    if diff > PARITY_TOLERANCE:
        raise ParityError(f"torch and onnxruntime scores differ by {diff:.2e} of the threshold")
    return diff


def evaluate_folder(model_path: Path, threshold: float, train, test, normal, anomaly) -> Evaluation:
    """The published protocol and one-vs-rest AUROCs, scored by onnxruntime alone (each image once)."""
    session = cpu_session(model_path)
    proto = protocol_eval_set(train, test, normal, anomaly)
    scores, _ = onnx_outputs(session, proto.images)
    test_scores, _ = onnx_outputs(session, test.images)
    metrics = detection_metrics(scores, proto.labels, threshold)
    per_digit = one_vs_rest_auroc(test_scores, test.labels, normal)
    metrics["auroc_one_vs_rest_mean"] = float(np.mean(list(per_digit.values())))
    return Evaluation(metrics, per_digit, scores, proto.labels, proto.description, proto, test_scores)


def evaluation_json(ev: Evaluation) -> dict[str, object]:
    return {
        "protocol": ev.description,
        "metrics": ev.metrics,
        "auroc_one_vs_rest": {str(d): a for d, a in ev.per_digit_auroc.items()},
    }


def write_figures(folder, model, fitted: FitResult, ev: Evaluation, train, test, normal, anomaly) -> None:
    report.loss_curves(fitted.history, fitted.best_epoch, folder / "loss_curves.png")
    session = cpu_session(folder / "model.onnx")
    proto = ev.protocol
    n_idx = np.flatnonzero(proto.labels == 0)[:10]
    a_idx = np.flatnonzero(proto.labels == 1)[:10]
    _, n_rec = onnx_outputs(session, proto.images[n_idx])
    _, a_rec = onnx_outputs(session, proto.images[a_idx])
    report.reconstructions(
        proto.images[n_idx] / 255.0, n_rec, proto.images[a_idx] / 255.0, a_rec, folder / "reconstructions.png"
    )
    report.score_histogram(ev.scores, ev.labels, ev.metrics["threshold"], folder / "score_histogram.png")
    report.roc(ev.scores, ev.labels, ev.metrics["roc_auc_scores"], folder / "roc_curve.png")
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(test.images[:5000].astype(np.float32) / 255.0))
    report.latent_pca(mu.numpy(), test.labels[:5000], normal, folder / "latent_pca.png")
    report.top_anomalies(test.images / 255.0, ev.test_scores, test.labels, folder / "top_anomalies.png")


def build_manifest(
    s: TrainSettings,
    out: Path,
    model: VAE,
    cal: Calibration,
    fitted: FitResult,
    ev: Evaluation,
    files: dict[str, str],
    split,
    normal,
) -> ModelManifest:
    h, w = model.image_shape
    score_fn = SCORE_FUNCTIONS[s.score]
    return ModelManifest(
        name=s.model_name(),
        version=out.name,
        kind="image",
        created_at=datetime.now(UTC),
        input=TensorSpec(name=SCORE_INPUT, shape=[h, w]),
        outputs={
            "score": TensorSpec(name="score", shape=[]),
            "reconstruction": TensorSpec(name="reconstruction", shape=[h, w]),
        },
        opset=OPSET,
        preprocessing=ImagePreprocessing(record_shape=[h, w]),
        score=ScoreSpec(function=score_fn, description=SCORE_DESCRIPTIONS[score_fn]),
        threshold=cal.threshold,
        calibration=cal,
        severity="calibration-span",
        training={
            "dataset": s.dataset,
            "data_dir": str(s.data_dir),
            "normal_digits": list(normal),
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
        metrics={k: float(v) for k, v in ev.metrics.items() if isinstance(v, float | int)},
        files=files,
        package_versions=package_versions(),
    )


def evaluate_bundle(bundle: Path, data_dir: Path) -> tuple[ModelManifest, Evaluation]:
    """Re-score a bundle with onnxruntime on the protocol its manifest names."""
    manifest = read_manifest(bundle)
    normal = tuple(manifest.training["normal_digits"])  # type: ignore[arg-type]
    anomaly = tuple(manifest.training["anomaly_digits"])  # type: ignore[arg-type]
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    ev = evaluate_folder(bundle / manifest.model_file, manifest.threshold, train, test, normal, anomaly)
    text = json.dumps(evaluation_json(ev), indent=2) + "\n"
    # evaluation.json is hashed in the manifest: a different result goes into a new file.
    stored = bundle / "evaluation.json"
    if not stored.exists() or stored.read_text() != text:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (bundle / f"evaluation-{stamp}.json").write_text(text)
    return manifest, ev
