"""The networks of one model kind together, built from config, and what users do with a trained model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaegan_dist.errors import CheckpointError
from vaegan_dist.model.architecture import DIS_L_SIDE, Architecture, architecture
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
    hold. A network the kind does not have is ``None``, so its weights are neither built nor saved.

    ``attributes`` names the attributes of an attribute-conditioned model (the paper's section 4.2), in the
    order of its y vectors; every network it has then takes y (0/1 per attribute) beside its input."""

    def __init__(self, image_size: int = 64, latent_dim: int = 128, encoder_fc: int = 2048,
                 discriminator_fc: int = 512, width: float = 1.0, kind: str = "vaegan",
                 attributes: Sequence[str] = (), spectral_norm: bool = False,
                 discriminator_norm: str = "batch", autoencoder_norm: str = "batch", dis_l_side: int = DIS_L_SIDE):
        super().__init__()
        for key, norm in (("discriminator_norm", discriminator_norm), ("autoencoder_norm", autoencoder_norm)):
            if norm not in ("batch", "none"):
                raise ValueError(f"unknown {key} {norm!r}; choose batch or none")
        if kind not in KIND_NETWORKS:
            raise ValueError(f"unknown model kind {kind!r}; choose one of: {', '.join(KIND_NETWORKS)}")
        has = KIND_NETWORKS[kind]
        self.kind = kind
        self.arch: Architecture = architecture(image_size, width, dis_l_side)
        self.latent_dim = latent_dim
        self.attributes: tuple[str, ...] = tuple(attributes)
        c = len(self.attributes)
        batch_normed = autoencoder_norm == "batch"
        self.encoder = Encoder(self.arch, latent_dim, encoder_fc, c, batch_normed) if "encoder" in has else None
        self.decoder = Decoder(self.arch, latent_dim, c, batch_normed)
        self.discriminator = (Discriminator(self.arch, discriminator_fc, c, spectral_norm,
                                            batch_norm=discriminator_norm == "batch")
                              if "discriminator" in has else None)

    @property
    def conditioned(self) -> bool:
        return bool(self.attributes)

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

    def _condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """y on the model's device; a conditioned model refuses to run without one (see join_condition)."""
        if y is None:
            if self.conditioned:
                raise CheckpointError(f"this model is conditioned on {len(self.attributes)} attributes "
                                      f"({', '.join(self.attributes[:5])}...): give the attributes of each image")
            return None
        return y.to(next(self.parameters()).device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior means for images in [-1, 1]: the latent codes used for attribute vectors."""
        mu, _ = self._need_encoder()(x, self._condition(y))
        return mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z, self._condition(y))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """n images from p(z); a conditioned model generates them with the attributes y ([n, attributes], 0/1)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(device)
        return self.decoder(z, self._condition(y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x, y), y)


def build_model(model_cfg, image_size: int, attributes: Sequence[str] = ()) -> VAEGAN:
    """From a :class:`vaegan_dist.config.ModelConfig` (kept duck-typed: the model knows no config module).
    ``attributes``: the data's attribute names, used when the config asks for an attribute-conditioned model."""
    conditioned = model_cfg.condition == "attributes"
    if conditioned and not attributes:
        raise ValueError("model.condition=attributes needs a data set with attributes, and this one has none")
    return VAEGAN(image_size=image_size, latent_dim=model_cfg.latent_dim, encoder_fc=model_cfg.encoder_fc,
                  discriminator_fc=model_cfg.discriminator_fc, width=model_cfg.width,
                  kind=model_cfg.kind, attributes=attributes if conditioned else (),
                  spectral_norm=model_cfg.spectral_norm,
                  discriminator_norm=model_cfg.discriminator_norm,
                  autoencoder_norm=model_cfg.autoencoder_norm,
                  dis_l_side=model_cfg.dis_l_side)
