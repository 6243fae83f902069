"""Pure training logic: loss, score, calibration, data selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.core.calibrate import calibrate, severity
from training.core.vae import kl_divergence
from training.images.loss import (
    anomaly_score,
    bce_with_logits_sum,
    bernoulli_entropy_sum,
    elbo_loss,
    reference_bce,
)
from training.images.mnist import load_split
from training.images.selection import (
    SelectionError,
    normal_train_val,
    parse_digits,
    protocol_eval_set,
)


def test_stable_bce_matches_torch_including_saturated_logits() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, 28, 28) * 30  # many saturated
    target = torch.rand(8, 28, 28)
    target[0] = 0.0
    target[1] = 1.0
    torch.testing.assert_close(bce_with_logits_sum(logits, target), reference_bce(logits, target))
    assert torch.isfinite(bce_with_logits_sum(torch.full((1, 4), 1e4), torch.zeros(1, 4))).all()


def test_excess_score_is_zero_for_a_perfect_reconstruction_and_positive_otherwise() -> None:
    x = torch.rand(4, 28, 28).clamp(0.01, 0.99)
    perfect = torch.log(x) - torch.log1p(-x)  # logit(x)
    assert anomaly_score(perfect, x, "bce_excess_sum").abs().max() < 1e-2
    worse = anomaly_score(perfect + 0.5, x, "bce_excess_sum")
    assert (worse > 1.0).all()
    # The raw BCE keeps the input's own entropy.
    torch.testing.assert_close(
        anomaly_score(perfect, x, "bce_sum"), bernoulli_entropy_sum(x), rtol=1e-4, atol=1e-2
    )
    with pytest.raises(ValueError, match="unknown score function"):
        anomaly_score(perfect, x, "mse")


def test_entropy_of_binary_pixels_is_zero() -> None:
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    assert bernoulli_entropy_sum(x).item() == 0.0
    assert bernoulli_entropy_sum(torch.full((1, 2), 0.5)).item() == pytest.approx(2 * np.log(2))


def test_kl_is_zero_at_the_prior_and_elbo_weights_it_by_beta() -> None:
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert kl_divergence(mu, logvar).abs().max() == 0
    mu2 = torch.ones(3, 5)
    logits, x = torch.zeros(3, 4), torch.full((3, 4), 0.5)
    loss1, recon, kl = elbo_loss(logits, x, mu2, logvar, beta=1.0)
    loss2, _, _ = elbo_loss(logits, x, mu2, logvar, beta=2.0)
    assert kl.item() == pytest.approx(2.5)
    assert loss2.item() - loss1.item() == pytest.approx(kl.item())
    assert recon.item() == pytest.approx(4 * np.log(2), rel=1e-5)


def test_percentile_calibration_and_severity() -> None:
    scores = np.arange(1, 1001, dtype=float)
    cal = calibrate(scores, "percentile", percentile=99.0, data="test")
    assert cal.threshold == pytest.approx(np.percentile(scores, 99))
    assert cal.percentiles["p50"] == pytest.approx(500.5)
    assert cal.n_scores == 1000 and cal.k is None
    sev = severity(np.array([cal.threshold, 1e9, -1e9]), cal)
    np.testing.assert_allclose(sev, [0.5, 1.0, 0.0])
    assert sev[0] == pytest.approx(cal.severity(cal.threshold))


def test_mean_std_calibration() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(10, 2, 10_000)
    cal = calibrate(scores, "mean-std", k=3.0, data="test")
    assert cal.threshold == pytest.approx(scores.mean() + 3 * scores.std())
    assert cal.percentile is None and cal.k == 3.0


def test_calibration_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        calibrate(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-empty"):
        calibrate(np.array([]))
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(np.array([1.0]), "median")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "1,x", "10", "1,1", "-1"])
def test_parse_digits_rejects(text: str) -> None:
    with pytest.raises(SelectionError, match="--normal"):
        parse_digits(text, "normal")


def test_protocol_eval_set_follows_the_published_protocol() -> None:
    train, test = load_split("train"), load_split("test")
    ev = protocol_eval_set(train, test, (1, 4), (5,))
    assert (ev.labels == 0).sum() == 2000 and (ev.labels == 1).sum() == 2000
    first_normals = np.flatnonzero(np.isin(test.labels, (1, 4)))[:2000]
    np.testing.assert_array_equal(ev.images[:2000], test.images[first_normals])
    # 5,421 training-set fives come first, so all 2,000 anomalies are training-set fives.
    np.testing.assert_array_equal(ev.images[2000:], train.images[train.labels == 5][:2000])
    assert set(ev.digits[:2000]) == {1, 4} and set(ev.digits[2000:]) == {5}


def test_validation_split_is_disjoint_and_reproducible() -> None:
    train = load_split("train")
    a = normal_train_val(train, (1, 4), 0.1, seed=3)
    b = normal_train_val(train, (1, 4), 0.1, seed=3)
    assert len(a.train) + len(a.val) == int(np.isin(train.labels, (1, 4)).sum())
    assert len(a.val) == round(0.1 * (len(a.train) + len(a.val)))
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.val, normal_train_val(train, (1, 4), 0.1, seed=4).val)


def test_one_vs_rest_covers_every_other_digit() -> None:
    from sklearn.metrics import roc_auc_score

    from training.images.evaluate import one_vs_rest_auroc

    digits = load_split("test").labels.astype(np.int64)
    scores = np.random.default_rng(0).random(len(digits)) + (digits == 5)  # 5s score higher
    auroc = one_vs_rest_auroc(scores, digits, (1, 4))
    assert list(auroc) == [0, 2, 3, 5, 6, 7, 8, 9]
    normals = np.isin(digits, (1, 4))
    sel = normals | (digits == 5)
    assert sel.sum() - normals.sum() == 892
    assert auroc[5] == pytest.approx(roc_auc_score(digits[sel] == 5, scores[sel]))
    assert auroc[5] == 1.0 and 0.4 < auroc[7] < 0.6
