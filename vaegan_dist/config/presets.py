"""Named starting points. Each is a plain function returning a full :class:`Config`."""

from __future__ import annotations

from collections.abc import Callable

from vaegan_dist.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    TrainConfig,
)


def celeba64() -> Config:
    """The paper at 64x64: encoder FC 2048, latent 128, batch 64, RMSProp 3e-4, ~62,500 steps.

    The paper gives no value of gamma; we take the released code's 1e-6.
    """
    return Config(preset="celeba64")


def celeba64_code() -> Config:
    """The authors' released code (andersbll/autoencoding_beyond_pixels, celeba_aegan.py and model/aegan.py)
    where it differs from the paper: only Dec(z_p) are fakes, 0.5/0.5 discriminator weighting, decoder GAN
    weight 1 - gamma, the equilibrium trick, encoder FC 1024, augmentation and an annealed learning rate."""
    return Config(
        preset="celeba64-code",
        data=DataConfig(augment=True),
        model=ModelConfig(encoder_fc=1024),
        objective=ObjectiveConfig(
            gamma=1e-6,
            fakes="prior",
            generator_loss="minimax",
            decoder_gan_weight="one_minus_gamma",
            discriminator_weighting="half",
            equilibrium=True,
        ),
        optim=OptimConfig(schedule="power_anneal"),
    )


def celeba64_recipe() -> Config:
    """The paper's 64 px networks, batch and length (``celeba64``) with the training recipe that the built-in faces
    measured at 64 px (bench/RESULTS.md, "The paper's resolution"): the smoke preset's recipe options, which
    learn at 64 px where none of the other single changes tried beat them (more gamma blurs, the discriminator's batch
    norm wrecks reconstructions, no equilibrium or 4x R1 are no better). For GPU users; ``celeba64`` and
    ``celeba64-code`` stay the paper and the released code.

    The weight average's half-life is StyleGAN2-ADA's 10,000 images (the smoke preset's 2,000 would be ~16 steps
    of the preset's 2 workers x batch 64). Set ``train.workers`` to the GPUs you have, as with ``celeba64``.
    The learning rates stay the paper's 3e-4: ``faces64``'s 1e-3 won on half-width networks at batch 32 and is
    not measured at full width, where a wider layer usually wants a smaller step."""
    cfg, recipe = celeba64(), smoke()
    cfg.preset = "celeba64-recipe"
    cfg.model.discriminator_norm, cfg.objective = recipe.model.discriminator_norm, recipe.objective
    cfg.optim.ema_halflife_kimg = 10.0
    return cfg


def fit_smoke_length(cfg: Config, overridden: set[str]) -> Config:
    """The main job's length on this machine, after the command line's overrides: about 3 minutes of training
    on 2 CPU cores either way. Keys the command line set are left as they are.

    On a CPU that computes bf16 natively, ``train.precision=auto`` trains in bf16, about twice as fast per step as
    float32 (bench/RESULTS.md, "bf16 on a native-bf16 CPU"), and the time goes to more steps: 1000 instead of 400
    take the run from fd 26 / fd_recon 28 to fd 16 / fd_recon 17 (seed 0; seed 1: 15.8 / 15.7); batch 32 per
    worker for 700 steps, in the same minutes, ended at fd 17.4 and 18.9 on two seeds. Where the step computes in
    float32 (``train.precision=fp32``, or a CPU without native bf16) the run stays the 400 steps it always was.
    Evaluations and checkpoints come every quarter of the run (every 100 steps at least), whatever its length.

    Decided on the machine that builds the config: the main job trains there. A job submitted to a cluster from
    a head node without native bf16 gets the 400-step run; ``train.steps`` sets any length.
    """
    if "train.steps" not in overridden:
        from vaegan_dist.train.precision import cpu_has_native_bf16  # torch: only for this preset

        cfg.train.steps = 1000 if cfg.train.precision != "fp32" and cpu_has_native_bf16() else 400
    every = max(100, cfg.train.steps // 4)
    for key in ("eval_every", "checkpoint_every"):
        if f"train.{key}" not in overridden:
            setattr(cfg.train, key, every)
    return cfg


# Presets whose values follow the machine and the command line, applied after the overrides.
FITS: dict[str, Callable[[Config, set[str]], Config]] = {"smoke": fit_smoke_length}


def smoke() -> Config:
    """The paper's networks at half width and 32x32, its optimiser, the built-in faces: about 3 minutes on 2 CPU
    cores with 2 Ray workers (plus about a minute, once, for the data and its evaluator): 400 steps here, 1000 once
    :func:`fit_smoke_length` finds the step computing in native bf16."""
    return Config(
        preset="smoke",
        data=DataConfig(image_size=32, batch_size=16, synthetic_samples=4096, loader_workers=1,
                        shuffle_buffer=500),
        model=ModelConfig(latent_dim=32, encoder_fc=256, discriminator_fc=128, width=0.5,
                          discriminator_norm="none"),
        # Departures from the paper so that 400 float32 CPU steps show learning, each measured with the evaluator
        # (bench/RESULTS.md, "Main job"): gamma 0.01 (0.1 and 1.0 gave worse fd and fd_recon; the GAN term
        # carries the early learning), the non-saturating generator loss and the released code's
        # equilibrium trick (with the saturating minimax loss the discriminator wins within ~200 steps and
        # the decoder's GAN gradient vanishes), half-width networks (width 0.25 plateaued by step 400).
        # The recipe options that won on bench/time_to_quality.py (bench/RESULTS.md, "Time to quality"):
        # together they take the 400-step run from fd 62 / fd_recon 37 to fd 30 / fd_recon 23; each alone
        # did far less, and Adam, the warm-up, the adaptive gamma and spectral norm did worse than none.
        # - the pixel term (L_llike also in pixels): Dis_l is a random discriminator's features at first;
        # - lazy R1 (gamma 1, every 4 steps): the discriminator stops chasing the decoder's artefacts;
        # - weight averaging: smooths the game's step-to-step jitter. Its half-life is 2,000 images, but the
        #   ramp-up (optim.ema_rampup 0.05) caps it at 5% of the images seen, which binds for the whole run:
        #   640 images (~20 steps of 32) at step 400, 1,600 (~50 steps) at step 1000;
        # - a discriminator without batch norm: fd 31 -> 21 and precision 0.63 -> 0.84 at step 400 on 2 seeds,
        #   fd_recon unchanged (bench/RESULTS.md, "A discriminator without batch norm"). With batch norm a
        #   batch of only reals or only fakes is normalised on its own statistics (the likely reason, not tested).
        objective=ObjectiveConfig(gamma=0.01, generator_loss="non_saturating", equilibrium=True,
                                  pixel_weight=1.0, r1_gamma=1.0, r1_every=4),
        optim=OptimConfig(ema_halflife_kimg=2.0),
        train=TrainConfig(steps=400, log_every=20, image_every=100, checkpoint_every=100, grid_size=32,
                          eval_every=100, eval_samples=400),
    )


def faces64() -> Config:
    """The smoke preset's networks at the paper's resolution, 64x64, on 8,000 built-in faces: about 18 minutes of
    training on 2 CPU cores where the step computes in native bf16 (twice that in float32), plus, once, about 7
    minutes for the data and its 64 px evaluator. The measurements behind it: bench/RESULTS.md, "The paper's
    resolution".

    The recipe is the smoke preset's with learning rates of 1e-3 instead of 3e-4 (all three networks): at 64 px
    the smoke recipe learns later than at 32 px (fd_recon 55-72 at step 1000), and of the single changes tried
    the learning rate is the one that moved the curve on two seeds (fd_recon 35 at step 1000 on both, 24-27 at
    step 3000, against 27 with 3e-4; 1e-4 was far worse). More gamma or pixel weight blur the
    reconstructions, the discriminator's batch norm wrecks them, an autoencoder without batch norm stays
    blurred, no equilibrium or a 4x R1 are no better. One Ray worker with both cores and batch 32, as the 64 px
    measurements ran (95 img/s in bf16 on a Zen 4 core pair); 3000 steps, the issue's 20-minute budget. The
    attribute edits need about five times that: at ``train.steps=15000`` the vectors alone reach 100%
    (Eyeglasses) and 87% (Smiling) at +3, against 54% and 17% at 3000 (bench/RESULTS.md, fifth session)."""
    cfg = smoke()
    cfg.preset = "faces64"
    cfg.data.image_size, cfg.data.batch_size, cfg.data.synthetic_samples = 64, 32, 8000
    cfg.data.shuffle_buffer = 1000
    cfg.optim.lr_encoder = cfg.optim.lr_decoder = cfg.optim.lr_discriminator = 1e-3
    cfg.train.workers, cfg.train.cpus_per_worker = "1", 2.0
    cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every, cfg.train.image_every = 3000, 500, 500, 250
    cfg.train.log_every = 50
    return cfg


PRESETS: dict[str, Callable[[], Config]] = {
    "smoke": smoke,
    "faces64": faces64,
    "celeba64": celeba64,
    "celeba64-code": celeba64_code,
    "celeba64-recipe": celeba64_recipe,
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        from vaegan_dist.config.errors import ConfigError

        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
