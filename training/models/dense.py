"""Dense VAE: the published tutorial's shape (784-512-256-latent and back)."""

from __future__ import annotations

import torch
from torch import nn

from training.models.base import VAE


class DenseVAE(VAE):
    arch = "dense"

    def __init__(
        self, image_shape: tuple[int, int], latent_dim: int, hidden: tuple[int, ...] = (512, 256)
    ) -> None:
        super().__init__(image_shape, latent_dim)
        n = image_shape[0] * image_shape[1]
        layers: list[nn.Module] = []
        width = n
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.encoder = nn.Sequential(nn.Flatten(), *layers)
        self.to_mu = nn.Linear(width, latent_dim)
        self.to_logvar = nn.Linear(width, latent_dim)
        layers = []
        width = latent_dim
        for h in reversed(hidden):
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.decoder = nn.Sequential(*layers, nn.Linear(width, n))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.image_shape)
