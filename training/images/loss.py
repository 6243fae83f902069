"""ELBO loss and the anomaly score, written once so training and the ONNX graph agree."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.core.vae import kl_divergence


def bce_with_logits_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-record summed binary cross-entropy, in the numerically stable form.

    max(l, 0) - l*x + log1p(exp(-|l|)) exports to ONNX cleanly; the exporter's
    lowering of F.binary_cross_entropy_with_logits returned NaN on saturated
    logits for some MNIST images (FIELD-NOTES).
    """
    per_pixel = torch.clamp(logits, min=0) - logits * target + torch.log1p(torch.exp(-torch.abs(logits)))
    return per_pixel.flatten(1).sum(dim=1)


def bernoulli_entropy_sum(target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-record summed entropy of the input pixels: the lowest BCE any reconstruction can reach."""
    t = target.flatten(1)
    plogp = t * torch.log(torch.clamp(t, min=eps)) + (1 - t) * torch.log(torch.clamp(1 - t, min=eps))
    return -plogp.sum(dim=1)


SCORE_FUNCTIONS = {
    "bce-excess": "bce_excess_sum",
    "bce": "bce_sum",
}
SCORE_DESCRIPTIONS = {
    "bce_sum": "summed binary cross-entropy of the reconstruction (from the latent mean) over pixels",
    "bce_excess_sum": (
        "summed binary cross-entropy over pixels minus the input's own pixel entropy (its minimum): "
        "0 for a perfect reconstruction (from the latent mean)"
    ),
}


def anomaly_score(logits: torch.Tensor, target: torch.Tensor, function: str) -> torch.Tensor:
    """Per-record reconstruction error; `function` is a manifest name (bce_sum, bce_excess_sum).

    The plain summed BCE carries the input's own entropy, large for thick, anti-aliased
    strokes whatever the reconstruction; subtracting it leaves only what the model got wrong.
    """
    bce = bce_with_logits_sum(logits, target)
    if function == "bce_sum":
        return bce
    if function == "bce_excess_sum":
        return bce - bernoulli_entropy_sum(target)
    raise ValueError(f"unknown score function {function!r}")


def elbo_loss(
    logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl), each the mean over the batch; loss = recon + beta * kl."""
    recon = bce_with_logits_sum(logits, target).mean()
    kl = kl_divergence(mu, logvar).mean()
    return recon + beta * kl, recon, kl


def reference_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """torch's own BCE, for tests of the stable form."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(dim=1)
