"""Encoder, Decoder and Discriminator of the paper (64 px), the released code's 32 px, and 128 px; loading a
trained one from its checkpoint."""

from vaegan_dist.model.architecture import Architecture, architecture
from vaegan_dist.model.decoder import Decoder
from vaegan_dist.model.discriminator import Discriminator
from vaegan_dist.model.encoder import Encoder
from vaegan_dist.model.store import load_model, load_state  # noqa: I001 (needs VAEGAN first)
from vaegan_dist.model.vaegan import VAEGAN, build_model

__all__ = ["Architecture", "architecture", "Encoder", "Decoder", "Discriminator", "VAEGAN", "build_model",
           "load_model", "load_state"]
