"""Training on a user's own images (IDX files of any size divisible by 4, labels of their own): the bundle
is written valid and served, with the metrics the data allows. On small synthetic sets, so quick."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from schemas import MANIFEST_FILE, ModelManifest
from training.images.evaluate import detection_metrics, format_table, one_vs_rest_auroc, verdict
from training.images.pipeline import train_bundle
from training.settings import ImageTrainSettings
from worker.serving.registry import ModelRegistry


def write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    names = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}[split]  # fmt: skip
    n, h, w = images.shape
    with gzip.open(folder / names[0], "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(folder / names[1], "wb") as fh:
        fh.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def own_images(folder: Path, labels: tuple[int, ...], n: int = 240, side: int = 16) -> Path:
    """Label 1: a bright bar across the top half; label 2 (if asked for): a bar across the bottom half."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        ys = rng.choice(np.array(labels), n)
        images = rng.integers(0, 40, (n, side, side))
        for i, y in enumerate(ys):
            row = rng.integers(1, side // 2 - 1) if y == 1 else rng.integers(side // 2 + 1, side - 1)
            images[i, row - 1 : row + 1, 2:-2] = 230
        write_idx(folder, split, images, ys)
    return folder


def settings(data: Path, out: Path) -> ImageTrainSettings:
    return ImageTrainSettings(data_dir=data, out=out, normal="1", anomaly="2", epochs=2, batch_size=32,
                              progress=False, calibration="percentile")  # fmt: skip


@pytest.mark.parametrize("labels", [(1, 2), (1,)], ids=["labels-1-and-2", "all-normal"])
def test_a_bundle_of_own_images_is_written_valid_and_served(tmp_path: Path, labels: tuple[int, ...]) -> None:
    data = own_images(tmp_path / "data", labels)
    out = tmp_path / "models" / "own-vae" / "1"
    trained = train_bundle(settings(data, out))  # the figures too: report is on by default
    manifest = ModelManifest.model_validate_json((out / MANIFEST_FILE).read_bytes())
    assert manifest.input.shape == [16, 16]
    assert all(np.isfinite(v) for v in manifest.metrics.values())
    assert "false_alarm_rate" in manifest.metrics
    assert ("roc_auc_scores" in manifest.metrics) == (labels == (1, 2))
    [model] = list(ModelRegistry.load(tmp_path / "models", "cpu", None, None))
    assert model.key == "own-vae:1"
    if labels == (1,):
        assert not (out / "roc_curve.png").exists() and (out / "reconstructions.png").exists()
        assert "detection is not measured" in verdict(trained.evaluation.metrics, False, (2,))


def test_metrics_of_a_set_without_anomalies_are_the_false_alarm_rate_alone() -> None:
    scores, labels = np.array([1.0, 2.0, 3.0, 10.0]), np.zeros(4, dtype=int)
    m = detection_metrics(scores, labels, threshold=5.0)
    assert m["false_alarm_rate"] == 0.25 and "roc_auc_scores" not in m and "accuracy" not in m
    table = format_table(m, {}, published=False)
    assert "nan" not in table and "published" not in table
    assert one_vs_rest_auroc(scores, np.array([1, 1, 1, 1]), (1,)) == {}  # no other label: none


def test_the_published_columns_and_bar_are_for_the_published_protocol_only() -> None:
    scores, labels = np.array([1.0, 2.0, 8.0, 9.0]), np.array([0, 0, 1, 1])
    m = detection_metrics(scores, labels, threshold=5.0)
    assert "published" in format_table(m, None, published=True)
    assert "published" not in format_table(m, None, published=False)
    assert "the bar" in verdict(m, True, (5,))
    assert "not shown for other data" in verdict(m, False, (2,))
    # labels the test set does not have are not scored (they were NaN, and NaN broke the manifest)
    assert list(one_vs_rest_auroc(scores, np.array([1, 1, 2, 2]), (1,))) == [2]
