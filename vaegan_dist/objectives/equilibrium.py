"""The equilibrium trick of the authors' released code (``objective.equilibrium``): pause whichever of the
decoder and the discriminator is too far ahead in the GAN game, so that neither wins outright.

Each step reads the discriminator's two costs, on real images and on fakes (binary cross-entropies; 0.68
~ -log 0.5 is a coin flip), averaged over the ranks:

    either cost < value - margin   (Dis is winning)        -> the discriminator does not step
    either cost > value + margin   (Dec is losing badly)   -> the decoder does not step
    both would pause                                        -> both step

value and margin are ``objective.equilibrium_value`` (0.68) and ``objective.equilibrium_margin`` (0.35), the
released code's. The encoder always steps. The decision stays on the device (two 0-d bool tensors) and the
training step masks the paused optimiser's update (:func:`vaegan_dist.train.optim.step_where`) instead of
branching, so a GPU's pipeline never waits for the host.
"""

from __future__ import annotations

import torch


def equilibrium_updates(real_cost: torch.Tensor, fake_cost: torch.Tensor, value: float,
                        margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The released code's balancing rule: (update decoder?, update discriminator?) as 0-d bool tensors on the
    costs' device, decided there: reading the costs on the host would stall a GPU's pipeline every step.

    Dis pauses when it is winning (either cost below value - margin), Dec pauses when it is losing badly
    (either cost above value + margin); if both would pause, both run.
    """
    dis_update = ~((real_cost < value - margin) | (fake_cost < value - margin))
    dec_update = ~((real_cost > value + margin) | (fake_cost > value + margin))
    neither = ~(dis_update | dec_update)
    return dec_update | neither, dis_update | neither
