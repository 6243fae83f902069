"""What every VAE here shares: encode -> (mu, logvar), reparameterise, decode -> logits."""

from __future__ import annotations

import torch
from torch import nn


class VAE(nn.Module):
    arch: str = "base"

    def __init__(self, image_shape: tuple[int, int], latent_dim: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, mu, logvar). Samples z while training; uses the mean otherwise."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def config(self) -> dict[str, object]:
        return {"arch": self.arch, "image_shape": list(self.image_shape), "latent_dim": self.latent_dim}
