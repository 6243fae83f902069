"""A tiny model trained for real: export, parity, determinism, the manifest contract, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from schemas import ModelManifest
from schemas.manifest import manifest_checksum_line, sha256_file
from tests.cli_helpers import has_flag, help_text
from training.images.mnist import load_split

REPO = Path(__file__).resolve().parents[1]
FIGURES = {
    "loss_curves.png",
    "reconstructions.png",
    "score_histogram.png",
    "roc_curve.png",
    "latent_pca.png",
    "top_anomalies.png",
}


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_bundle_holds_every_file_with_its_hash(tiny_bundle) -> None:
    folder, manifest = tiny_bundle.folder, tiny_bundle.manifest
    on_disk = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "encoder.onnx", "decoder.onnx", "manifest.json", "evaluation.json"} <= on_disk
    assert on_disk >= FIGURES
    assert set(manifest.files) == on_disk - {"manifest.json", "manifest.sha256"}
    assert (folder / "manifest.sha256").read_text() == manifest_checksum_line(
        (folder / "manifest.json").read_bytes()
    )
    for name, digest in manifest.files.items():
        assert sha256_file(folder / name) == digest
    assert not [p for p in folder.parent.iterdir() if ".partial-" in p.name]  # no staging left over
    stored = ModelManifest.model_validate_json((folder / "manifest.json").read_text())
    assert stored == manifest
    assert manifest.name == "tiny-vae" and manifest.version == "1" and manifest.kind == "image"
    assert manifest.threshold == manifest.calibration.threshold
    assert manifest.calibration.percentile == 99.0 and manifest.calibration.n_scores > 12_000
    assert manifest.package_versions["torch"]


def test_onnx_graph_has_named_dynamic_batch_and_scores_deterministically(tiny_bundle) -> None:
    folder, manifest = tiny_bundle.folder, tiny_bundle.manifest
    sess = session(folder / "model.onnx")
    [inp] = sess.get_inputs()
    assert inp.name == manifest.input.name == "images"
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [28, 28]
    assert [o.name for o in sess.get_outputs()] == ["score", "reconstruction", "anomaly_map"]
    assert manifest.outputs["anomaly_map"].shape == [28, 28]  # up to 32 x 32 the map is the image's pixels
    images = load_split("test").images[:300].astype(np.float32) / 255.0
    scores_a, recon, residual = sess.run(None, {"images": images})
    scores_b, *_ = session(folder / "model.onnx").run(None, {"images": images})
    assert scores_a.shape == (300,) and recon.shape == (300, 28, 28)
    np.testing.assert_allclose(residual, images - recon, atol=1e-6)
    assert np.isfinite(scores_a).all()
    np.testing.assert_array_equal(scores_a, scores_b)  # the latent mean: same input, same score
    # Batch size does not change a record's score.
    single = np.concatenate([sess.run(["score"], {"images": images[i : i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(single, scores_a[:5], rtol=1e-5)


def test_torch_and_onnxruntime_agree_on_real_images(tiny_bundle) -> None:
    from training.images.export import torch_scores

    images = load_split("test").images[:1000].astype(np.float32) * np.float32(1 / 255)
    ref = torch_scores(tiny_bundle.model, tiny_bundle.manifest.score.function, images)
    [got] = session(tiny_bundle.folder / "model.onnx").run(["score"], {"images": images})
    assert np.isfinite(got).all()
    assert np.max(np.abs(ref - got)) / abs(tiny_bundle.manifest.threshold) <= 1e-4


def test_parity_check_catches_a_graph_that_drifted(tiny_bundle) -> None:
    import copy

    import torch

    from training.core.export import ParityError
    from training.images.export import check_image_parity

    drifted = copy.deepcopy(tiny_bundle.model)
    with torch.no_grad():
        next(drifted.parameters()).add_(0.05)
    images = load_split("test").images[:200]
    score_function, onnx_path = tiny_bundle.manifest.score.function, tiny_bundle.folder / "model.onnx"
    with pytest.raises(ParityError, match="differ"):
        check_image_parity(drifted, score_function, onnx_path, images)
    check_image_parity(tiny_bundle.model, score_function, onnx_path, images)


def test_encoder_and_decoder_graphs_compose_to_the_reconstruction(tiny_bundle) -> None:
    folder = tiny_bundle.folder
    images = load_split("test").images[:50].astype(np.float32) / 255.0
    mu, logvar = session(folder / "encoder.onnx").run(None, {"images": images})
    latent = tiny_bundle.manifest.training["latent_dim"]
    assert mu.shape == logvar.shape == (50, latent)
    [recon_dec] = session(folder / "decoder.onnx").run(None, {"z": mu})
    [recon] = session(folder / "model.onnx").run(["reconstruction"], {"images": images})
    np.testing.assert_allclose(recon_dec, recon, atol=1e-5)


def test_evaluation_is_stored_and_reproduced_by_the_cli(tiny_bundle) -> None:
    folder, manifest, evaluation = tiny_bundle.folder, tiny_bundle.manifest, tiny_bundle.evaluation
    stored = json.loads((folder / "evaluation.json").read_text())
    assert stored["metrics"]["roc_auc_scores"] == pytest.approx(evaluation.metrics["roc_auc_scores"])
    assert set(stored["auroc_one_vs_rest"]) == {"0", "2", "3", "5", "6", "7", "8", "9"}
    # Even six epochs tell 5s from 1s and 4s far better than chance.
    assert evaluation.metrics["roc_auc_scores"] > 0.99
    done = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ROC AUC (scores)" in done.stdout and "0.9812" in done.stdout  # the published column
    assert f"{evaluation.metrics['accuracy']:.4f}" in done.stdout
    assert sha256_file(folder / "evaluation.json") == manifest.files["evaluation.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "/nonexistent"], "does not exist; point --data-dir"),
        (["--normal", "1,x"], "--normal must be"),
        (["--normal", "1,5", "--anomaly", "5"], "share a digit"),
        (["--epochs", "0"], "invalid --epochs / TRAINING_EPOCHS"),
    ],
)
def test_train_cli_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training", "train", "--out", str(tmp_path / "m" / "1"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_train_refuses_an_existing_bundle_folder(tiny_bundle) -> None:
    folder = tiny_bundle.folder
    done = subprocess.run(
        [sys.executable, "-m", "training", "train", "--out", str(folder), "--epochs", "1", "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "already exists" in done.stderr


def test_help_explains_every_option_of_image_training_and_none_of_kpi_training() -> None:
    from training.settings import ImageTrainSettings, KpiTrainSettings

    text = help_text("train")
    for field in ImageTrainSettings.model_fields:
        assert has_flag(text, field), field
    for field in set(KpiTrainSettings.model_fields) - set(ImageTrainSettings.model_fields):
        assert not has_flag(text, field), field
