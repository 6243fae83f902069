"""Dense VAE: the published tutorial's shape (784-512-256-latent and back)."""

from __future__ import annotations

import torch
from torch import nn

from training.core.vae import dense_relu
from training.images.models.base import VAE


class DenseVAE(VAE):
    arch = "dense"

    def __init__(
        self, image_shape: tuple[int, int], latent_dim: int, hidden: tuple[int, ...] = (512, 256)
    ) -> None:
        super().__init__(image_shape, latent_dim)
        n = image_shape[0] * image_shape[1]
        down, up = [n, *hidden], [latent_dim, *reversed(hidden)]
        self.encoder = nn.Sequential(nn.Flatten(), *dense_relu(down))
        self.to_mu = nn.Linear(down[-1], latent_dim)
        self.to_logvar = nn.Linear(down[-1], latent_dim)
        self.decoder = nn.Sequential(*dense_relu(up), nn.Linear(up[-1], n))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.image_shape)
