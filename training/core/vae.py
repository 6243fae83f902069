"""What every VAE here shares: encode -> (mu, logvar), a sampled latent while training, decode; the KL
term of its loss; and the dense layers both dense encoders are made of."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


class VAE(nn.Module):
    """Subclasses give `encode` and `decode`; `forward` is the same for all."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoded, mu, logvar). Samples z while training; uses the mean otherwise."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-record KL(q(z|x) || N(0, I))."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def dense_relu(widths: Sequence[int]) -> list[nn.Module]:
    """Linear then ReLU from each width to the next (none for a single width)."""
    layers: list[nn.Module] = []
    for width_in, width_out in pairwise(widths):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return layers
