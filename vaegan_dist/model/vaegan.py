"""The networks of one model kind together, built from config, and what users do with a trained model."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.errors import CheckpointError
from vaegan_dist.model.architecture import Architecture, architecture
from vaegan_dist.model.decoder import Decoder
from vaegan_dist.model.discriminator import Discriminator
from vaegan_dist.model.encoder import Encoder

# Which networks each model kind has (the paper's comparison uses the same networks for all four): a plain
# VAE has no discriminator, a plain GAN no encoder. Which loss trains which is objectives.kinds' business.
KIND_NETWORKS: dict[str, tuple[str, ...]] = {
    "vaegan": ("encoder", "decoder", "discriminator"),
    "vae": ("encoder", "decoder"),
    "vae_disl": ("encoder", "decoder", "discriminator"),
    "gan": ("decoder", "discriminator"),
}


class VAEGAN(nn.Module):
    """Encoder, decoder (= generator) and discriminator, or the subset a baseline kind has. Training wraps
    each in DDP separately, because each has its own loss and optimiser; this container is what checkpoints
    hold. A network the kind does not have is ``None``, so its weights are neither built nor saved."""

    def __init__(self, image_size: int = 64, latent_dim: int = 128, encoder_fc: int = 2048,
                 discriminator_fc: int = 512, width: float = 1.0, kind: str = "vaegan"):
        super().__init__()
        if kind not in KIND_NETWORKS:
            raise ValueError(f"unknown model kind {kind!r}; choose one of: {', '.join(KIND_NETWORKS)}")
        has = KIND_NETWORKS[kind]
        self.kind = kind
        self.arch: Architecture = architecture(image_size, width)
        self.latent_dim = latent_dim
        self.encoder = Encoder(self.arch, latent_dim, encoder_fc) if "encoder" in has else None
        self.decoder = Decoder(self.arch, latent_dim)
        self.discriminator = Discriminator(self.arch, discriminator_fc) if "discriminator" in has else None

    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name: each gets its own optimiser, DDP wrapper and gradient."""
        return {name: getattr(self, name) for name in KIND_NETWORKS[self.kind]}

    @property
    def can_reconstruct(self) -> bool:
        return self.encoder is not None

    def _need_encoder(self) -> Encoder:
        if self.encoder is None:
            raise CheckpointError(f"this is a {self.kind!r} model: it has no encoder, so it cannot encode or "
                                  "reconstruct images (only sample)")
        return self.encoder

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means for images in [-1, 1]: the latent codes used for attribute vectors."""
        mu, _ = self._need_encoder()(x)
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
                  discriminator_fc=model_cfg.discriminator_fc, width=model_cfg.width,
                  kind=getattr(model_cfg, "kind", "vaegan"))
