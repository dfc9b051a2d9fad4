"""The ``faces64`` preset: the built-in faces at the paper's resolution. Its one Ray worker is the launcher's
ordinary path (tests/integration/test_ray_train.py); here the preset's networks and recipe train in-process."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vaegan_dist.config import build_config
from vaegan_dist.data.synthetic import prepare_synthetic
from vaegan_dist.model.architecture import architecture
from vaegan_dist.model.store import load_model, load_state
from vaegan_dist.train.launcher import launch


def test_faces64_preset_is_the_recipe_at_64_px():
    faces, smoke = build_config("faces64"), build_config("smoke", ["train.precision=fp32"])
    assert (faces.data.image_size, faces.data.batch_size, faces.data.synthetic_samples) == (64, 32, 8000)
    assert (faces.train.workers, faces.train.cpus_per_worker, faces.train.steps) == ("1", 2.0, 3000)
    assert (faces.train.eval_every, faces.train.checkpoint_every, faces.train.precision) == (500, 500, "auto")
    assert build_config("faces64", ["train.precision=fp32"]).train.steps == 3000  # smoke's fitted length is its own
    assert faces.objective == smoke.objective and faces.model == smoke.model
    # the one departure from the smoke recipe: the learning rates (bench/RESULTS.md, "The paper's resolution")
    assert (faces.optim.lr_encoder, faces.optim.lr_decoder, faces.optim.lr_discriminator) == (1e-3, 1e-3, 1e-3)
    assert dataclasses.replace(faces.optim, lr_encoder=3e-4, lr_decoder=3e-4, lr_discriminator=3e-4) == smoke.optim
    recipe, paper = build_config("celeba64-recipe"), build_config("celeba64")
    assert recipe.objective == smoke.objective and recipe.model.discriminator_norm == "none"
    assert (recipe.data, recipe.train) == (paper.data, paper.train)
    assert recipe.model.width == paper.model.width == 1.0 and recipe.optim.ema_halflife_kimg == 10.0


@pytest.mark.slow
def test_faces64_trains_a_few_steps_at_64_px(tmp_path):
    data = tmp_path / "faces64"
    prepare_synthetic(data, num=60, size=64, seed=4, workers=1, shard_samples=30, progress=False)
    cfg = build_config("faces64", [f"data.source={data}", f"train.storage_path={tmp_path}", "train.name=f64",
                                   "train.workers=0", "train.steps=3", "data.batch_size=8", "data.loader_workers=0",
                                   "data.shuffle_buffer=16", "train.eval_every=0", "train.grid_size=8",
                                   "train.precision=fp32"])
    launch(cfg)
    model, saved, step = load_model(tmp_path / "f64", averaged=False)
    assert step == 3 and saved.preset == "faces64" and saved.data.image_size == 64
    arch = architecture(64, 0.5)  # the paper's 64 px layout at the preset's width
    assert model.discriminator.blocks[arch.dis_l_block][0].out_channels == arch.dis_l_channels == 128
    images = model.sample(4, torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 64, 64) and torch.isfinite(images).all()
    losses = load_state(tmp_path / "f64")["metrics"]
    assert losses and all(torch.isfinite(torch.as_tensor(v)).all() for v in losses.values())
