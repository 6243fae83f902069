"""A dense VAE over windows of W normalised points (Donut's shape), its M-ELBO loss and its score.

Decoder: a Gaussian with one learned noise level sigma for every point (a "sigma-VAE"):
the balance between reconstruction and KL then adapts to how noisy the scaled series are,
instead of being fixed by a guessed variance. The score does not use sigma: it is the
squared error of the window's last `score_points` points, reconstructed from the latent
mean, so it is deterministic and the ONNX graph computes it exactly as torch does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from training.core.vae import VAE, dense_relu, kl_divergence

LOG_SIGMA_MIN = -5.0  # sigma >= 0.007 of a series' robust scale: no collapse onto the noise of one series


class WindowVAE(VAE):
    arch = "kpi-dense"

    def __init__(
        self, window: int, latent_dim: int, hidden: tuple[int, ...] = (100, 100), score_points: int = 1
    ) -> None:
        super().__init__()
        if not 1 <= score_points <= window:
            raise ValueError(f"score points must be in 1..{window}, not {score_points}")
        self.window, self.latent_dim, self.hidden = window, latent_dim, tuple(hidden)
        self.score_points = score_points
        down, up = [window, *hidden], [latent_dim, *reversed(hidden)]
        self.encoder = nn.Sequential(*dense_relu(down))
        self.to_mu = nn.Linear(down[-1], latent_dim)
        self.to_logvar = nn.Linear(down[-1], latent_dim)
        self.decoder = nn.Sequential(*dense_relu(up), nn.Linear(up[-1], window))
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Per window: mean squared error of the last `score_points` points, from the latent mean."""
        mu, _ = self.encode(x)
        err = self.decode(mu)[:, -self.score_points :] - x[:, -self.score_points :]
        return (err * err).mean(dim=1)

    def config(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "window": self.window,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "score_points": self.score_points,
        }


def m_elbo(
    model: WindowVAE, recon: torch.Tensor, x: torch.Tensor, observed: torch.Tensor,
    mu: torch.Tensor, logvar: torch.Tensor, beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(loss, reconstruction NLL, KL), batch means. Donut's M-ELBO: only observed points count,
    and the KL term is scaled by the observed share of the window, so a window of filled
    points pulls neither the decoder toward the fill nor the latent toward the prior."""
    log_sigma = model.log_sigma.clamp(min=LOG_SIGMA_MIN)
    m = observed.to(x.dtype)
    nll = (0.5 * ((x - recon) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)) * m
    nll = nll.sum(dim=1)
    kl = kl_divergence(mu, logvar)
    share = m.mean(dim=1)
    return (nll + beta * share * kl).mean(), nll.mean(), kl.mean()
