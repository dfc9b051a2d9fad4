"""The golden loss curve's inputs and reader, shared by tests/unit/test_golden_losses.py (this process) and
tests/integration/test_cpu_capabilities.py (fresh processes under forced ATen kernels). What the curve is and
why it is float64: tests/unit/test_golden_losses.py."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

import vaegan_kernels as kernels
from vaegan_dist.config import build_config
from vaegan_dist.data.synthetic_faces import face
from vaegan_dist.model import build_model
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep

ASSET = Path(__file__).parent / "unit" / "assets" / "golden_smoke_losses.json"
STEPS = 20
TERMS = ("loss/l_prior", "loss/l_llike", "loss/l_gan", "loss/l_gen", "gan/d_real", "gan/d_prior")
COSTS = ("gan/real_cost", "gan/fake_cost")  # what the equilibrium trick decides on
RTOL = 1e-6


# The smoke objective as it was when the asset was written (gamma 0.01, non-saturating, equilibrium), and the
# released code's objective (minimax, 0.5/0.5 weighting with its inverse on the decoder, Dec(z_p) fakes only,
# decoder weight 1 - gamma, equilibrium, annealed learning rate) at smoke size.
SMOKE_OBJECTIVE = ["objective.gamma=0.01", "objective.generator_loss=non_saturating", "objective.equilibrium=true",
                   "objective.fakes=prior_and_reconstruction", "objective.discriminator_weighting=sum",
                   "objective.decoder_gan_weight=one", "optim.schedule=constant", "objective.r1_gamma=0",
                   "objective.pixel_weight=0", "objective.adaptive_gamma=false", "objective.gan_start=0",
                   "model.spectral_norm=false", "model.discriminator_norm=batch", "model.autoencoder_norm=batch",
                   "model.dis_l_side=8", "objective.kl_weight=1",
                   "optim.algorithm=rmsprop", "optim.ema_halflife_kimg=0"]
OBJECTIVES = {
    "smoke": SMOKE_OBJECTIVE,
    # The recipe options that change the losses, each on: lazy R1 (a step with and without it within the 20),
    # the pixel term, and the adaptive gamma.
    "recipe": [*SMOKE_OBJECTIVE, "objective.r1_gamma=1", "objective.r1_every=4", "objective.pixel_weight=1",
               "objective.adaptive_gamma=true"],
    "released_code": [*SMOKE_OBJECTIVE, "objective.fakes=prior", "objective.generator_loss=minimax",
                      "objective.discriminator_weighting=half", "objective.decoder_gan_weight=one_minus_gamma",
                      "optim.schedule=power_anneal"],
}
# The smoke preset's networks and optimiser when the asset was written.
NETWORKS = ["data.image_size=32", "data.batch_size=16", "model.latent_dim=32", "model.encoder_fc=256",
            "model.discriminator_fc=128", "model.width=0.5", "optim.lr_encoder=3e-4", "optim.lr_decoder=3e-4",
            "optim.lr_discriminator=3e-4", "optim.rms_decay=0.9", "optim.eps=1e-8", "optim.weight_decay=1e-5"]


def smoke_curve(objective: str = "smoke", steps: int = STEPS) -> dict[str, list[float]]:
    cfg = build_config("smoke", [f"train.steps={STEPS}", *NETWORKS, *OBJECTIVES[objective]])
    size, batch = cfg.data.image_size, cfg.data.batch_size
    torch.manual_seed(cfg.train.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # fp32 uniform_ draws differ in the last digit between CPUs
    try:
        model = build_model(cfg.model, size).to(memory_format=torch.channels_last)
    finally:
        torch.set_default_dtype(previous)
    runtime = dataclasses.replace(runtime_for(False, precision="fp32"), dtype=torch.float64)
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime, noise_seed=0)
    curve = {term: [] for term in (*TERMS, *COSTS)}
    with kernels.use_backend("reference"):
        for i in range(steps):
            images = np.stack([face(7, i * batch + j, size)[0] for j in range(batch)])
            metrics = step(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), i)
            for term in curve:
                curve[term].append(float(metrics[term]))
    return curve


def golden(objective: str) -> dict[str, list[float]]:
    return json.loads(ASSET.read_text())["curves"][objective]


def assert_follows_golden(curve: dict[str, list[float]], objective: str) -> None:
    """``curve`` may be the golden curve's first steps."""
    reference = golden(objective)
    for term in TERMS:
        np.testing.assert_allclose(curve[term], reference[term][:len(curve[term])], rtol=RTOL, atol=1e-9,
                                   err_msg=f"{objective} {term}")
