"""Fitting the image VAE: the ELBO on images scaled as the worker scales them, in the core's epoch loop."""

from __future__ import annotations

import numpy as np
import torch

from training.core.fit import BatchLosses, FitConfig, FitResult, run_epochs, seed_everything
from training.core.vae import kl_divergence
from training.images.loss import bce_with_logits_sum, elbo_loss
from training.images.mnist import scale_pixels
from training.images.models import VAE


def to_tensor(images: np.ndarray, device: str) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] on `device`, as the worker scales them."""
    return torch.from_numpy(scale_pixels(images)).to(device)


@torch.no_grad()
def evaluate_loss(model: VAE, images: torch.Tensor, beta: float, batch: int = 1024) -> dict[str, float]:
    """Validation ELBO from the latent mean: deterministic, so early stopping is not noise-driven."""
    model.eval()
    recon = kl = 0.0
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        logits, mu, logvar = model(x)
        recon += float(bce_with_logits_sum(logits, x).sum())
        kl += float(kl_divergence(mu, logvar).sum())
    n = len(images)
    return {"loss": (recon + beta * kl) / n, "recon": recon / n, "kl": kl / n}


def fit(
    model: VAE, train_images: np.ndarray, val_images: np.ndarray, cfg: FitConfig, progress: bool = True
) -> FitResult:
    """Train in place; on return the model holds the weights of the best validation epoch."""
    seed_everything(cfg.seed)
    model.to(cfg.device)
    x_train = to_tensor(train_images, cfg.device)
    x_val = to_tensor(val_images, cfg.device)

    def batches(gen: torch.Generator) -> BatchLosses:
        for idx in torch.randperm(len(x_train), generator=gen).split(cfg.batch_size):
            x = x_train[idx.to(cfg.device)]
            logits, mu, logvar = model(x)
            yield (*elbo_loss(logits, x, mu, logvar, cfg.beta), len(x))

    steps = (len(x_train) + cfg.batch_size - 1) // cfg.batch_size
    return run_epochs(model, cfg, steps, batches, lambda: evaluate_loss(model, x_val, cfg.beta), progress)
