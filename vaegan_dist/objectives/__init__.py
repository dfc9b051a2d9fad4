"""The paper's losses (built on :mod:`kernels`), the rules for which network each one trains, and the
model kinds that choose among them."""

from vaegan_dist.objectives.equilibrium import equilibrium_updates
from vaegan_dist.objectives.kinds import KINDS, ModelKind, StepOutcome, model_kind
from vaegan_dist.objectives.losses import (
           Forward,
           GanTerms,
           Losses,
           compute_losses,
           decoder_gan_weight,
           gan_terms,
           run_forward,
)
from vaegan_dist.objectives.recipe import GanPhase, adaptive_gan_weight, r1_penalty
from vaegan_dist.objectives.routing import (
           compute_generator_gradients,
           compute_gradients,
           discriminator_weight_inverse,
)

__all__ = ["Forward", "Losses", "run_forward", "compute_losses", "compute_gradients", "equilibrium_updates",
           "compute_generator_gradients", "GanTerms", "gan_terms",
           "decoder_gan_weight", "discriminator_weight_inverse", "ModelKind", "StepOutcome", "KINDS", "model_kind",
           "GanPhase", "adaptive_gan_weight", "r1_penalty"]
