"""Convolutional VAE: two strided conv layers down, two transposed conv layers up."""

from __future__ import annotations

import torch
from torch import nn

from training.images.models.base import VAE


class ConvVAE(VAE):
    arch = "conv"

    def __init__(
        self,
        image_shape: tuple[int, int],
        latent_dim: int,
        channels: tuple[int, int] = (16, 32),
        fc: int = 128,
    ) -> None:
        super().__init__(image_shape, latent_dim)
        h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"conv VAE needs image sides divisible by 4, got {image_shape}")
        c1, c2 = channels
        self.channels, self.fc = (c1, c2), fc
        self.feat = (c2, h // 4, w // 4)
        flat = c2 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Flatten(), nn.Linear(flat, fc), nn.LeakyReLU(0.1),
        )  # fmt: skip
        self.to_mu = nn.Linear(fc, latent_dim)
        self.to_logvar = nn.Linear(fc, latent_dim)
        self.decoder_fc = nn.Sequential(
            nn.Linear(latent_dim, fc), nn.LeakyReLU(0.1), nn.Linear(fc, flat), nn.LeakyReLU(0.1)
        )
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),
        )  # fmt: skip

    def config(self) -> dict[str, object]:
        # 16/32 channels and fc 128 score as well as 32/64/256 (accuracy 0.9888 vs 0.9892, AUC 0.9990
        # both) and run 2.6x faster in onnxruntime on one CPU thread (30.6k vs 11.6k images/s at batch 256).
        return {**super().config(), "channels": list(self.channels), "fc": self.fc}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x.unsqueeze(1))
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        feat = self.decoder_fc(z).view(-1, *self.feat)
        return self.decoder_conv(feat).squeeze(1)
