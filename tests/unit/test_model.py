import math

import pytest
import torch

from vaegan_dist.config.schema import SUPPORTED_IMAGE_SIZES, dis_l_sides
from vaegan_dist.model import VAEGAN, architecture


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_paper_network_at_64px():
    m = VAEGAN(64, latent_dim=128, encoder_fc=2048, discriminator_fc=512)
    # Encoder: three 5x5 stride-2 convs without bias, each with BN (scale + shift), FC 2048 + BN, two heads.
    encoder = (3 * 64 * 25 + 2 * 64) + (64 * 128 * 25 + 2 * 128) + (128 * 256 * 25 + 2 * 256) \
        + (256 * 8 * 8 * 2048 + 2 * 2048) + 2 * (2048 * 128 + 128)
    # Decoder: FC to 256x8x8 + BN, transposed convs 256->256->128->32 with BN, 5x5 conv to RGB with bias.
    decoder = (128 * 256 * 8 * 8 + 2 * 256 * 8 * 8) + (256 * 256 * 25 + 2 * 256) + (256 * 128 * 25 + 2 * 128) \
        + (128 * 32 * 25 + 2 * 32) + (32 * 3 * 25 + 3)
    # Discriminator: conv 32 with bias (no BN), convs 128, 256, 256 with BN, FC 512 + BN, FC 1 with bias.
    discriminator = (3 * 32 * 25 + 32) + (32 * 128 * 25 + 2 * 128) + (128 * 256 * 25 + 2 * 256) \
        + (256 * 256 * 25 + 2 * 256) + (256 * 8 * 8 * 512 + 2 * 512) + (512 + 1)
    assert (count(m.encoder), count(m.decoder), count(m.discriminator)) == (encoder, decoder, discriminator)


def test_code_variant_encoder_fc_1024():
    m = VAEGAN(64, encoder_fc=1024)
    assert m.encoder.fc[0].weight.shape == (1024, 256 * 8 * 8)


@pytest.mark.parametrize("size, features", [(32, 192 * 8 * 8), (64, 256 * 8 * 8), (128, 256 * 8 * 8)])
def test_shapes_at_every_size(size, features):
    m = VAEGAN(size, latent_dim=16, encoder_fc=32, discriminator_fc=16, width=0.25 if size == 128 else 1.0)
    x = torch.rand(2, 3, size, size) * 2 - 1
    mu, logvar = m.encoder(x)
    assert mu.shape == logvar.shape == (2, 16)
    y = m.decoder(mu)
    assert y.shape == x.shape and y.abs().max() <= 1
    logits, f = m.discriminator(torch.cat([x, y]))
    assert logits.shape == (4,)
    expected = features if size != 128 else round(256 * 0.25) * 8 * 8
    assert f.shape == (4, expected) == (4, m.arch.dis_l_features)


def test_paper_spatial_path_at_64px():
    m = VAEGAN(64)
    sides = []
    h = torch.zeros(2, 3, 64, 64)
    for block in m.encoder.convs:
        h = block(h)
        sides.append(h.shape[1:])
    assert sides == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    h = m.decoder.fc(torch.zeros(2, 128)).view(2, 256, 8, 8)
    sides = []
    for block in m.decoder.deconvs:
        h = block(h)
        sides.append(h.shape[1:])
    assert sides == [(256, 16, 16), (128, 32, 32), (32, 64, 64)]


@pytest.mark.parametrize("size, dis_l_side, conv_index, shape", [
    (64, 8, 3, (256, 8, 8)), (32, 8, 2, (192, 8, 8)),  # the paper's: the 4th conv at 64 px, the 3rd at 32 px
    (64, 16, 2, (256, 16, 16)), (64, 32, 1, (128, 32, 32)), (32, 4, 3, (256, 4, 4)),  # model.dis_l_side
])
def test_dis_l_is_the_conv_output_before_batchnorm(size, dis_l_side, conv_index, shape):
    """Dis_l: the conv whose output side is dis_l_side, before its BN and ReLU."""
    vaegan = VAEGAN(size, dis_l_side=dis_l_side)
    m = vaegan.discriminator
    convs = [m.stem[0]] + [block[0] for block in m.blocks]
    seen = {}
    convs[conv_index].register_forward_hook(lambda mod, inp, out: seen.setdefault("out", out.detach().clone()))
    x = torch.randn(3, 3, size, size)
    _, features = m(x)
    assert seen["out"].shape[1:] == shape
    assert torch.equal(features, seen["out"].flatten(1))
    assert features.shape[1] == math.prod(shape) == vaegan.arch.dis_l_features
    assert features.min() < 0  # not after a ReLU


@pytest.mark.parametrize("size", SUPPORTED_IMAGE_SIZES)
def test_the_config_validates_dis_l_side_against_the_discriminator_the_model_builds(size):
    d = VAEGAN(size, latent_dim=4, encoder_fc=8, discriminator_fc=8, width=0.125).discriminator.eval()
    h, sides = d.stem(torch.zeros(1, 3, size, size)), []
    for block in d.blocks:
        h = block(h)
        sides.append(h.shape[-1])
    assert tuple(sides) == dis_l_sides(size)


def test_dis_l_side_moves_the_metric_not_the_weights():
    """Another Dis_l changes no parameter, so a checkpoint loads either way (hence not an architecture key)."""
    paper = VAEGAN(64, width=0.25, encoder_fc=32)
    finer = VAEGAN(64, width=0.25, encoder_fc=32, dis_l_side=16)
    finer.load_state_dict(paper.state_dict())
    x = torch.randn(2, 3, 64, 64)
    paper.eval(), finer.eval()
    (logit_paper, f_paper), (logit_finer, f_finer) = paper.discriminator(x), finer.discriminator(x)
    torch.testing.assert_close(logit_finer, logit_paper)  # the same discriminator
    assert f_paper.shape == (2, 64 * 8 * 8) and f_finer.shape == (2, 64 * 16 * 16)
    with pytest.raises(ValueError, match="no discriminator convolution of side 12 at image_size=64; choose one of "
                                         "32, 16, 8"):
        VAEGAN(64, dis_l_side=12)


def test_paper_initialisation():
    m = VAEGAN(32, width=0.5)
    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = mod.weight[0].numel()
            bound = 1 / math.sqrt(3 * fan_in)
            assert mod.weight.abs().max() <= bound
            assert mod.weight.abs().max() > 0.9 * bound  # uniform fills the interval
            if mod.bias is not None:
                assert torch.all(mod.bias == 0)
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert mod.eps == 1e-6 and mod.momentum == 0.1 and mod.affine
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and mod.bias is not None:
            assert mod.out_channels == 3 or mod is m.discriminator.stem[0]  # bias only where no BN follows


def test_width_scales_channels():
    arch = architecture(64, width=0.25)
    assert arch.encoder_channels == (16, 32, 64) and arch.discriminator_channels == (32, 64, 64)


def test_unsupported_size():
    with pytest.raises(ValueError, match="no architecture for image_size=48"):
        VAEGAN(48)


def test_sample_and_reconstruct_helpers():
    m = VAEGAN(32, latent_dim=8, encoder_fc=16, discriminator_fc=8, width=0.125).eval()
    g = torch.Generator().manual_seed(1)
    a, b = m.sample(4, generator=g), m.sample(4, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    assert torch.equal(m.reconstruct(x), m.decoder(m.encoder(x)[0]))


def test_saved_evaluation_reads_the_eval_metrics_and_the_step_of_a_checkpoint(tmp_path):
    """The one reader of a checkpoint's metrics: eval/* without the prefix, numbers only, other keys left out."""
    from vaegan_dist.errors import CheckpointError
    from vaegan_dist.model.store import FORMAT, STATE_FILE, saved_evaluation

    state = {"format": FORMAT, "step": 300, "model": {"w": torch.zeros(3)}, "config": {},
             "metrics": {"eval/fd": 12.5, "eval/kid": 1, "eval/nan": float("nan"), "eval/flag": True,
                         "eval/text": "x", "loss/l_gan": 0.7}}
    torch.save(state, tmp_path / STATE_FILE)
    step, metrics = saved_evaluation(tmp_path)
    assert step == 300 and set(metrics) == {"fd", "kid", "nan"}
    assert metrics["fd"] == 12.5 and metrics["kid"] == 1.0 and math.isnan(metrics["nan"])
    torch.save({**state, "metrics": "not a dict"}, tmp_path / STATE_FILE)
    assert saved_evaluation(tmp_path) == (300, {})
    torch.save({**state, "step": "300"}, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError, match="'step' entry is not an integer"):
        saved_evaluation(tmp_path)
