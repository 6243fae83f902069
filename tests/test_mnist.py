"""The bundled MNIST copy and its numpy loader."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from training.images.mnist import BUNDLED_DIR, MnistError, load_split


def test_bundled_test_split_is_the_original() -> None:
    split = load_split("test")
    assert split.images.shape == (10000, 28, 28) and split.images.dtype == np.uint8
    assert split.images.mean() == pytest.approx(33.791224, abs=1e-6)
    assert np.bincount(split.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_copy_carries_its_credit() -> None:
    text = (BUNDLED_DIR / "README.md").read_text()
    assert "LeCun" in text and "Cortes" in text and "CC BY-SA 3.0" in text


def test_missing_folder_and_file_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match="--data-dir"):
        load_split("test", tmp_path / "nope")
    with pytest.raises(MnistError, match=r"missing .*t10k-images"):
        load_split("test", tmp_path)
    with pytest.raises(MnistError, match="unknown split"):
        load_split("validation")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((BUNDLED_DIR / name).read_bytes())
    raw = gzip.decompress((BUNDLED_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(MnistError, match="truncated"):
        load_split("test", tmp_path)
