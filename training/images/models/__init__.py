"""VAE architectures. Each maps (B, H, W) images in [0, 1] to logits of the same shape."""

from __future__ import annotations

from training.images.models.base import VAE
from training.images.models.conv import ConvVAE
from training.images.models.dense import DenseVAE

ARCHS = {"conv": ConvVAE, "dense": DenseVAE}


def build_model(arch: str, image_shape: tuple[int, int], latent_dim: int) -> VAE:
    if arch not in ARCHS:
        raise ValueError(f"unknown --arch {arch!r}: use one of {', '.join(ARCHS)}")
    return ARCHS[arch](image_shape=image_shape, latent_dim=latent_dim)


__all__ = ["ARCHS", "VAE", "ConvVAE", "DenseVAE", "build_model"]
