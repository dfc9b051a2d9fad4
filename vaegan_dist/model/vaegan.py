"""The three networks together, built from config, and what users do with a trained model."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model.architecture import Architecture, architecture
from vaegan_dist.model.decoder import Decoder
from vaegan_dist.model.discriminator import Discriminator
from vaegan_dist.model.encoder import Encoder


class VAEGAN(nn.Module):
    """Encoder, decoder (= generator) and discriminator. Training wraps each in DDP separately,
    because each has its own loss and optimiser; this container is what checkpoints hold."""

    def __init__(self, image_size: int = 64, latent_dim: int = 128, encoder_fc: int = 2048,
                 discriminator_fc: int = 512, width: float = 1.0):
        super().__init__()
        self.arch: Architecture = architecture(image_size, width)
        self.latent_dim = latent_dim
        self.encoder = Encoder(self.arch, latent_dim, encoder_fc)
        self.decoder = Decoder(self.arch, latent_dim)
        self.discriminator = Discriminator(self.arch, discriminator_fc)

    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name: each gets its own optimiser, DDP wrapper and gradient."""
        return {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means for images in [-1, 1]: the latent codes used for attribute vectors."""
        mu, _ = self.encoder(x)
        return mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(device)
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


def build_model(model_cfg, image_size: int) -> VAEGAN:
    """From a :class:`vaegan_dist.config.ModelConfig` (kept duck-typed: the model knows no config module)."""
    return VAEGAN(image_size=image_size, latent_dim=model_cfg.latent_dim, encoder_fc=model_cfg.encoder_fc,
                  discriminator_fc=model_cfg.discriminator_fc, width=model_cfg.width)
