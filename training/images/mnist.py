"""MNIST from the original IDX `.gz` files, with numpy and gzip only (no download)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The project's own copy (data/mnist), so nothing needs a network or ../shared.
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


def scale_pixels(images_u8: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]: the worker's pre-processing of uint8 records (x / 255)."""
    return images_u8.astype(np.float32) * np.float32(1.0 / 255.0)


class MnistError(ValueError):
    """The MNIST files are missing or not what they should be."""


@dataclass(frozen=True)
class MnistSplit:
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) uint8


def load_split(split: str, data_dir: Path | str = BUNDLED_DIR) -> MnistSplit:
    """Read the `train` or `test` split from `data_dir` (the four IDX .gz files)."""
    if split not in _FILES:
        raise MnistError(f"unknown split {split!r}: use 'train' or 'test'")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MnistError(f"MNIST folder {data_dir} does not exist; point --data-dir at the IDX files")
    images_file, labels_file = (data_dir / name for name in _FILES[split])
    images = _read_idx(images_file, _IMAGES_MAGIC)
    labels = _read_idx(labels_file, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise MnistError(
            f"{images_file.name} has {len(images)} images but {labels_file.name} {len(labels)} labels"
        )
    return MnistSplit(images=images, labels=labels)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    if not path.is_file():
        raise MnistError(f"missing {path}; the folder needs the four original MNIST IDX .gz files")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise MnistError(f"{path} is not a readable gzip file: {exc}") from None
    header = np.frombuffer(raw[:4], dtype=">u4")
    if len(header) != 1 or int(header[0]) != magic:
        raise MnistError(f"{path} is not an IDX file with magic {magic}")
    ndim = magic & 0xFF
    dims = [int(d) for d in np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">u4")]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise MnistError(f"{path} is truncated: header says {dims}, body has {body.size} bytes")
    return body.reshape(dims)
