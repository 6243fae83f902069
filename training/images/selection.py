"""Which images are normal, which anomalous, and the evaluation protocol.

The protocol is the published VAE tutorial's: train on the training-set images of
the normal digits; evaluate on the first 2,000 test-set normals plus the first
2,000 anomalies taken from the training-set anomalies followed by the test-set ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.images.mnist import MnistSplit


class SelectionError(ValueError):
    pass


def parse_digits(text: str, what: str) -> tuple[int, ...]:
    """'1,4' -> (1, 4); a clear error for anything else."""
    try:
        digits = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise SelectionError(
            f"--{what} must be comma-separated digits 0-9 like '1,4', not {text!r}"
        ) from None
    if not digits or any(d < 0 or d > 9 for d in digits):
        raise SelectionError(f"--{what} must be digits 0-9 like '1,4', not {text!r}")
    if len(set(digits)) != len(digits):
        raise SelectionError(f"--{what} lists a digit twice: {text!r}")
    return digits


@dataclass(frozen=True)
class TrainValSplit:
    train: np.ndarray  # uint8 (n, 28, 28)
    val: np.ndarray


def normal_train_val(
    train: MnistSplit, normal: tuple[int, ...], val_fraction: float, seed: int
) -> TrainValSplit:
    """Training-set normals, shuffled with `seed` and split; validation is never the test set."""
    idx = np.flatnonzero(np.isin(train.labels, normal))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(idx)
    n_val = round(len(idx) * val_fraction)
    return TrainValSplit(train=train.images[np.sort(idx[n_val:])], val=train.images[np.sort(idx[:n_val])])


@dataclass(frozen=True)
class EvalSet:
    images: np.ndarray  # uint8 (n, 28, 28)
    labels: np.ndarray  # 1 = anomaly, 0 = normal
    digits: np.ndarray  # the MNIST digit of each image
    description: str


def protocol_eval_set(
    train: MnistSplit, test: MnistSplit, normal: tuple[int, ...], anomaly: tuple[int, ...], n_each: int = 2000
) -> EvalSet:
    """First `n_each` test normals + first `n_each` anomalies (training-set ones first, then test)."""
    normal_idx = np.flatnonzero(np.isin(test.labels, normal))[:n_each]
    anomalies = np.concatenate(
        [train.images[np.isin(train.labels, anomaly)], test.images[np.isin(test.labels, anomaly)]]
    )[:n_each]
    anomaly_digits = np.concatenate(
        [train.labels[np.isin(train.labels, anomaly)], test.labels[np.isin(test.labels, anomaly)]]
    )[:n_each]
    images = np.concatenate([test.images[normal_idx], anomalies])
    labels = np.concatenate([np.zeros(len(normal_idx), np.int64), np.ones(len(anomalies), np.int64)])
    digits = np.concatenate([test.labels[normal_idx], anomaly_digits]).astype(np.int64)
    desc = (
        f"first {len(normal_idx)} test-set images of digits {list(normal)} + first {len(anomalies)} "
        f"images of digits {list(anomaly)} (training set, then test set)"
    )
    return EvalSet(images=images, labels=labels, digits=digits, description=desc)
