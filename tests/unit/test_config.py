import pytest
import yaml

from vaegan_dist.config import (
    PRESETS,
    ConfigError,
    all_keys,
    build_config,
    config_from_dict,
    config_to_dict,
    save_config,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_round_trips(name, tmp_path):
    cfg = build_config(name)
    save_config(cfg, tmp_path / "c.yaml")
    assert config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text())) == cfg
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["preset"] == name


def test_paper_and_code_presets_follow_paper_md():
    paper, code = build_config("celeba64"), build_config("celeba64-code")
    for cfg in (paper, code):  # the recipe options beyond the paper stay off in both
        o, p = cfg.objective, cfg.optim
        assert (o.gan_start, o.adaptive_gamma, o.r1_gamma, o.pixel_weight, p.ema_halflife_kimg, p.algorithm,
                cfg.model.spectral_norm, cfg.model.discriminator_norm, cfg.model.autoencoder_norm,
                cfg.model.dis_l_side) == (0, False, 0.0, 0.0, 0.0, "rmsprop", False, "batch", "batch", 8)
    assert (paper.data.image_size, paper.data.batch_size, paper.model.latent_dim,
            paper.model.encoder_fc) == (64, 64, 128, 2048)
    assert paper.optim.lr_encoder == paper.optim.lr_decoder == paper.optim.lr_discriminator == 3e-4
    assert paper.optim.rms_decay == 0.9 and paper.objective.fakes == "prior_and_reconstruction"
    assert code.model.encoder_fc == 1024 and code.objective.fakes == "prior" and code.objective.equilibrium
    assert code.objective.gamma == 1e-6 and code.objective.generator_loss == "minimax"
    assert code.objective.discriminator_weighting == "half"


def test_overrides_convert_by_field_type():
    cfg = build_config("smoke", ["train.steps=1_000", "objective.gamma=1e-2", "data.hflip=false",
                                 "objective.fakes=prior", "train.name=abc"])
    assert cfg.train.steps == 1000 and cfg.objective.gamma == 0.01 and cfg.data.hflip is False
    assert cfg.objective.fakes == "prior" and cfg.train.name == "abc"


def test_elastic_worker_range():
    assert build_config("smoke", ["train.workers=2-4"]).train.worker_range() == (2, 4)
    assert build_config("smoke", ["train.workers=3"]).train.worker_range() == (3, 3)


def test_later_override_wins():
    assert build_config("smoke", ["train.steps=5", "train.steps=7"]).train.steps == 7


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", "unknown config key 'train.stepz' (did you mean 'train.steps'?)"),
    ("nosuch.key=1", "unknown config key 'nosuch.key'"),
    ("train.steps=abc", "config key 'train.steps' expects an integer, got 'abc'"),
    ("train.steps=2.5", "config key 'train.steps' expects an integer"),
    ("objective.gamma=much", "config key 'objective.gamma' expects a number"),
    ("data.hflip=maybe", "config key 'data.hflip' expects true or false"),
    ("objective.fakes=all", "config key 'objective.fakes' must be one of prior_and_reconstruction, prior"),
    ("optim.lr_encoder=-1e-4", "config key 'optim.lr_encoder' must be > 0"),
    ("data.image_size=48", "config key 'data.image_size' must be one of 32, 64, 128"),
    ("data.batch_size=1", "config key 'data.batch_size' must be at least 2"),
    ("train.workers=-1", "config key 'train.workers' must be N or MIN-MAX"),
    ("train.workers=4-2", "config key 'train.workers' must have 1 <= MIN <= MAX"),
    ("train.name=a/b", "config key 'train.name' must be a plain directory name"),
    ("train=1", "config key 'train' is a group"),
    ("steps", "override 'steps' is not of the form key=value"),
    ("objective.gan_start=-1", "config key 'objective.gan_start' must be >= 0"),
    ("objective.r1_every=0", "config key 'objective.r1_every' must be >= 1"),
    ("objective.r1_gamma=-1", "config key 'objective.r1_gamma' must be >= 0"),
    ("objective.pixel_weight=-0.5", "config key 'objective.pixel_weight' must be >= 0"),
    ("objective.adaptive_weight=0", "config key 'objective.adaptive_weight' must be > 0"),
    ("optim.ema_halflife_kimg=-2", "config key 'optim.ema_halflife_kimg' must be >= 0"),
    ("optim.adam_beta1=1", "config key 'optim.adam_beta1' must be in [0, 1)"),
    ("optim.algorithm=sgd", "config key 'optim.algorithm' must be one of rmsprop, adam"),
    ("model.kind=vae objective.adaptive_gamma=true", "only model.kind=vaegan has (model.kind is 'vae')"),
    ("model.kind=gan objective.gan_start=10", "must be 0 for model.kind=gan"),
    ("objective.kl_weight=0", "config key 'objective.kl_weight' must be > 0"),
    ("model.dis_l_side=32", "config key 'model.dis_l_side' must be the output side of a discriminator convolution "
                            "at data.image_size=32: one of 16, 8, 4; got 32"),
    ("data.image_size=64 model.dis_l_side=0", "at data.image_size=64: one of 32, 16, 8; got 0"),
])
def test_bad_overrides_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        build_config("smoke", override.split(" "))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        build_config("nope")


def test_config_from_dict_names_the_file_and_key():
    data = config_to_dict(build_config("smoke"))
    data["train"]["bogus"] = 1
    with pytest.raises(ConfigError, match=r"run/config.yaml: unknown config key 'train.bogus'"):
        config_from_dict(data, source="run/config.yaml")


def test_all_keys_lists_leaves():
    keys = all_keys()
    assert "train.steps" in keys and "objective.gamma" in keys and "train" not in keys


def test_sync_batchnorm_is_refused_on_cpu_workers_in_one_line_naming_the_key():
    from vaegan_dist.train.launcher import check_sync_batchnorm

    cfg = build_config("smoke", ["model.sync_batchnorm=true"])
    with pytest.raises(ConfigError, match="'model.sync_batchnorm' needs GPU workers: .* on a CPU-only sweep"):
        check_sync_batchnorm(cfg, gpu=False, what="sweep")
    check_sync_batchnorm(cfg, gpu=True)
    check_sync_batchnorm(build_config("smoke"), gpu=False)
