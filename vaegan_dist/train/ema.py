"""An exponential moving average of the encoder's and decoder's weights (``optim.ema_halflife_kimg``).

A GAN's generator weights jitter from step to step around a better solution; their average is what
StyleGAN2-ADA (and most strong GAN trainers since) shows and scores. We follow its convention: the half-life
is counted in images seen by all workers together, so it means the same at any batch size and worker count,
and early in training it is shortened to ``ema_rampup`` x the images seen so far, so that a short run's
average is not mostly its random initialisation.

The averaged model has no discriminator: it is not averaged (it is the training signal), and nothing that
shows the average during training needs one. It must not share the live one either: evaluation puts the
model it shows in eval mode and back, and a shared discriminator was left in eval mode (batch norm on running
statistics) for the next training steps. Batch-norm statistics are averaged with the same
weight as the parameters, so that the averaged layers normalise with statistics of (nearly) the averaged
weights. Everything happens on the device, with no host synchronisation.
"""

from __future__ import annotations

import copy

import torch

from vaegan_dist.model import VAEGAN

AVERAGED = ("encoder", "decoder")


def generator_copy(model: VAEGAN) -> VAEGAN:
    """A copy of ``model``'s encoder and decoder, in eval mode and without gradients; its discriminator is neither
    copied nor shared (see above)."""
    discriminator, model.discriminator = model.discriminator, None
    try:
        return copy.deepcopy(model).eval().requires_grad_(False)
    finally:
        model.discriminator = discriminator


def ema_beta(batch_images: int, images_seen: int, halflife_kimg: float, rampup: float) -> float:
    """The weight of the old average after one step of ``batch_images`` images (StyleGAN2-ADA's formula)."""
    halflife = halflife_kimg * 1000.0
    if rampup > 0:
        halflife = min(halflife, images_seen * rampup)
    return 0.5 ** (batch_images / max(halflife, 1e-8))


class WeightAverage:
    """``model`` is the live (unwrapped) model; ``self.model`` its average, in eval mode, for grids, evaluation
    and checkpoints."""

    def __init__(self, model: VAEGAN, halflife_kimg: float, rampup: float):
        self.halflife_kimg, self.rampup = halflife_kimg, rampup
        self.model = generator_copy(model)

    @torch.no_grad()
    def update(self, model: VAEGAN, batch_images: int, images_seen: int) -> None:
        """Fold in the live weights after a step of ``batch_images`` images (all workers), ``images_seen`` in all."""
        beta = ema_beta(batch_images, images_seen, self.halflife_kimg, self.rampup)
        for name in AVERAGED:
            live, average = getattr(model, name), getattr(self.model, name)
            if live is None:
                continue
            for p_avg, p in zip(average.parameters(), live.parameters(), strict=True):
                p_avg.lerp_(p.detach(), 1.0 - beta)
            for b_avg, b in zip(average.buffers(), live.buffers(), strict=True):
                if b.is_floating_point():
                    b_avg.lerp_(b, 1.0 - beta)
                else:  # num_batches_tracked
                    b_avg.copy_(b)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: getattr(self.model, name).state_dict() for name in AVERAGED
                if getattr(self.model, name) is not None}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Raises ValueError (or load_state_dict's RuntimeError) for an entry that is not this model's average."""
        if not isinstance(state, dict) or not set(state) <= set(AVERAGED):
            raise ValueError("not the encoder's and decoder's weights")
        for name, weights in state.items():
            network = getattr(self.model, name)
            if network is None or not isinstance(weights, dict):
                raise ValueError(f"{name!r} is not a network of this model with its weights")
            network.load_state_dict(weights)
