"""The paper's losses (built on :mod:`kernels`) and the rules for which network each one trains."""

from vaegan_dist.objectives.losses import Forward, Losses, compute_losses, decoder_gan_weight, run_forward
from vaegan_dist.objectives.routing import compute_gradients, equilibrium_updates

__all__ = ["Forward", "Losses", "run_forward", "compute_losses", "compute_gradients", "equilibrium_updates",
           "decoder_gan_weight"]
