"""What every image VAE shares: (B, H, W) images in [0, 1] in, logits of the same shape out."""

from __future__ import annotations

from training.core.vae import VAE as CoreVAE


class VAE(CoreVAE):
    arch: str = "base"

    def __init__(self, image_shape: tuple[int, int], latent_dim: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim

    def config(self) -> dict[str, object]:
        return {"arch": self.arch, "image_shape": list(self.image_shape), "latent_dim": self.latent_dim}
