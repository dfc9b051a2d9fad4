"""The training step's recipe machinery against references written out here: the masked optimiser step against
a skipped one, the weight average against its hand recurrence, the warm-up's boundaries, and a step that
reads nothing back to the host."""

import copy
import dataclasses

import pytest
import torch
from torch.overrides import TorchFunctionMode

from vaegan_dist.config import build_config
from vaegan_dist.model import build_model
from vaegan_dist.objectives import model_kind
from vaegan_dist.train.ema import WeightAverage, ema_beta
from vaegan_dist.train.optim import apply_settings, build_optimizers, step_where
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep


@pytest.mark.parametrize("algorithm", ["rmsprop", "adam"])
def test_a_masked_step_ends_exactly_where_a_skipped_step_does(algorithm):
    """Both ways through the same pattern of steps and skips, a skip first (state that does not exist yet):
    weights and optimiser state must be bit-for-bit the same."""
    cfg = build_config("smoke", [f"optim.algorithm={algorithm}", "optim.weight_decay=0.01"])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    masked, branched = copy.deepcopy(net), copy.deepcopy(net)
    fake_model = type("M", (), {"encoder": None, "networks": lambda self: {"decoder": None}})()
    opts = {}
    for name, module in (("masked", masked), ("branched", branched)):
        fake_model.networks = lambda module=module: {"decoder": module}
        opts[name] = build_optimizers(fake_model, cfg.optim)["decoder"]
    pattern = [False, True, False, False, True, True, False, True]
    for i, update in enumerate(pattern):
        grads = [torch.randn_like(p) for p in net.parameters()]
        for module in (masked, branched):
            for p, g in zip(module.parameters(), grads):
                p.grad = g.clone()
        step_where(opts["masked"], torch.tensor(update))
        if update:
            opts["branched"].step()
        for a, b in zip(masked.parameters(), branched.parameters()):
            assert torch.equal(a, b), f"step {i}"
    state_m, state_b = opts["masked"].state_dict()["state"], opts["branched"].state_dict()["state"]
    assert state_m.keys() == state_b.keys()
    for key in state_m:
        for name in state_b[key]:
            assert torch.equal(torch.as_tensor(state_m[key][name]), torch.as_tensor(state_b[key][name])), name
    assert int(state_b[0]["step"]) == sum(pattern)


def _stepped_model_and_optimisers(cfg):
    """The smoke model on the CPU and its optimisers after one step: state to save and load."""
    torch.manual_seed(0)
    model = build_model(cfg.model, 32)
    optimizers = build_optimizers(model, cfg.optim)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    for opt in optimizers.values():
        opt.step()
    return model, optimizers


@pytest.mark.parametrize("algorithm", ["rmsprop", "adam"])
def test_optimisers_saved_capturable_on_a_gpu_resume_on_a_cpu(algorithm):
    """A GPU run's optimisers are saved with capturable=True; loaded on a CPU, apply_settings makes them
    non-capturable again, and the next step equals the step of optimisers that never left the CPU."""
    cfg = build_config("smoke", [f"optim.algorithm={algorithm}"])
    model, saved = _stepped_model_and_optimisers(cfg)
    # load_state_dict keeps tensors that are already in place: copies, so that each optimiser has its own
    states = {name: copy.deepcopy(opt.state_dict()) for name, opt in saved.items()}
    for state in states.values():
        for group in state["param_groups"]:
            group["capturable"] = True  # as torch.save wrote them on the GPU
    on_cpu, reference = copy.deepcopy(model), copy.deepcopy(model)
    resumed, untouched = build_optimizers(on_cpu, cfg.optim), build_optimizers(reference, cfg.optim)
    for name in resumed:
        resumed[name].load_state_dict(states[name])
        untouched[name].load_state_dict(copy.deepcopy(saved[name].state_dict()))
    apply_settings(resumed, cfg.optim)
    apply_settings(untouched, cfg.optim)
    for p, q in zip(on_cpu.parameters(), reference.parameters()):
        p.grad = q.grad = torch.full_like(p, 0.5)
    for name in resumed:
        resumed[name].step()  # raised "If capturable=True, params and state_steps must be on supported devices"
        untouched[name].step()
    assert all(not g["capturable"] for opt in resumed.values() for g in opt.param_groups)
    for p, q in zip(on_cpu.parameters(), reference.parameters()):
        assert torch.equal(p, q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs this there)")
def test_optimisers_saved_on_a_cpu_resume_capturable_on_a_gpu():
    """The other way round: a CPU run's optimisers, loaded on a GPU, become capturable with their step counters
    on the device (else Adam reads its counter on the host every step)."""
    cfg = build_config("smoke", ["optim.algorithm=adam"])
    model, saved = _stepped_model_and_optimisers(cfg)
    on_gpu = copy.deepcopy(model).cuda()
    resumed = build_optimizers(on_gpu, cfg.optim)
    for name, opt in resumed.items():
        opt.load_state_dict(copy.deepcopy(saved[name].state_dict()))
    apply_settings(resumed, cfg.optim)
    assert all(g["capturable"] for opt in resumed.values() for g in opt.param_groups)
    assert all(state["step"].is_cuda for opt in resumed.values() for state in opt.state.values())


def test_ema_beta_follows_the_half_life_and_the_ramp_up_by_hand():
    # 10 kimg half-life, batch 32: after 10,000 images the old average weighs 1/2.
    assert ema_beta(32, 10**9, 10.0, 0.05) ** (10_000 / 32) == pytest.approx(0.5)
    # Early on the ramp-up shortens it to 5% of the images seen: 64 seen -> half-life 3.2 images.
    assert ema_beta(32, 64, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 3.2))
    assert ema_beta(32, 64, 10.0, 0.0) == pytest.approx(0.5 ** (32 / 10_000))


def test_the_weight_average_follows_its_recurrence_and_averages_batch_norm_statistics():
    cfg = build_config("smoke", ["model.width=0.125", "model.encoder_fc=16", "model.latent_dim=4"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32)
    average = WeightAverage(model, halflife_kimg=0.1, rampup=0.0)
    assert average.model.discriminator is None  # not averaged, and not shared (its train/eval mode would leak)
    expected = {k: v.clone() for k, v in average.model.decoder.state_dict().items()}
    for step in range(3):
        with torch.no_grad():
            for p in [*model.decoder.parameters(), *model.encoder.parameters()]:
                p.add_(torch.randn_like(p))
            for m in model.decoder.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.add_(1.0)
                    m.num_batches_tracked += 1
        average.update(model, batch_images=16, images_seen=16 * (step + 1))
        beta = 0.5 ** (16 / 100)
        for key, value in model.decoder.state_dict().items():
            if value.is_floating_point():
                expected[key] = beta * expected[key] + (1 - beta) * value
            else:
                expected[key] = value.clone()
    for key, value in average.model.decoder.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(average.model.decoder.fc[0].weight, model.decoder.fc[0].weight)


class HostReads(TorchFunctionMode):
    """Counts the calls that copy a tensor's value to the host (a device synchronisation on a GPU)."""

    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__,
             torch.Tensor.__int__, torch.Tensor.numpy, torch.Tensor.__index__}

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


def _step(overrides, skips_on_host: bool = True):
    cfg = build_config("smoke", ["model.width=0.125", "model.encoder_fc=16", "model.latent_dim=4",
                                 "model.discriminator_fc=8", "data.batch_size=4", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32).to(memory_format=torch.channels_last)
    average = WeightAverage(model, cfg.optim.ema_halflife_kimg, cfg.optim.ema_rampup) \
        if cfg.optim.ema_halflife_kimg > 0 else None
    runtime = dataclasses.replace(runtime_for(False, precision="fp32"), skips_on_host=skips_on_host)
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime, noise_seed=0,
                     kind=model_kind(cfg.model.kind), ema=None if average is None else (average, model))
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    return model, step, images


def test_a_step_reads_nothing_back_to_the_host():
    """The equilibrium trick, the adaptive gamma, a lazy R1 step and the weight average together: not one value
    goes to the host (on a GPU each would stall the pipeline). bench/gpu_check.sh runs the same step under
    torch.cuda.set_sync_debug_mode('error')."""
    model, step, images = _step(["objective.equilibrium=true", "objective.adaptive_gamma=true",
                                 "objective.r1_gamma=1.0", "objective.r1_every=2", "optim.ema_halflife_kimg=1"],
                                skips_on_host=False)  # the GPU's way: masked on the device
    step(images, 0)  # the optimisers create their state on the first step
    with HostReads() as mode:
        metrics = step(images, 2)  # an R1 step
    assert mode.reads == []
    assert {"loss/r1", "objective/adaptive_gan_weight", "equilibrium/decoder_skipped"} <= metrics.keys()


def test_a_cpu_step_that_branches_on_the_skips_ends_where_the_masked_step_does():
    """On a CPU the equilibrium trick's skips are read and branched on (no copies); over steps that skip and steps
    that do not, weights and optimiser state must be bit-for-bit those of the device-masked step."""
    overrides = ["objective.equilibrium=true", "objective.equilibrium_value=0.69", "objective.equilibrium_margin=0.003"]
    (branched, by_branch, images), (masked, by_mask, _) = _step(overrides), _step(overrides, skips_on_host=False)
    skips = 0
    for i in range(4):
        metrics = by_branch(images, i)
        by_mask(images, i)
        skips += metrics["equilibrium/decoder_skipped"].item() + metrics["equilibrium/discriminator_skipped"].item()
        for (name, a), b in zip(branched.named_parameters(), masked.parameters()):
            assert torch.equal(a, b), f"step {i}: {name}"
    assert 0 < skips < 8  # both kinds of step happened
    for name, opt in by_branch.optimizers.items():
        for p_a, p_b in zip(opt.state.values(), by_mask.optimizers[name].state.values()):
            assert all(torch.equal(torch.as_tensor(p_a[k]), torch.as_tensor(p_b[k])) for k in p_a), name


@pytest.mark.parametrize("kind, networks", [("vaegan", {"encoder", "decoder", "discriminator"}),
                                            ("gan", {"decoder", "discriminator"}), ("vae", {"encoder", "decoder"})])
def test_a_step_logs_the_learning_rate_of_each_network_it_trains_and_no_other(kind, networks):
    _, step, images = _step([f"model.kind={kind}"])
    metrics = step(images, 0)
    assert {k.removeprefix("lr/") for k in metrics if k.startswith("lr/")} == networks


def test_the_warm_up_holds_the_discriminator_until_gan_start():
    model, step, images = _step(["objective.gan_start=2"])
    snapshots = []
    for i in range(3):
        snapshots.append({n: copy.deepcopy(getattr(model, n).state_dict()) for n in ("decoder", "discriminator")})
        step(images, i)
    snapshots.append({n: copy.deepcopy(getattr(model, n).state_dict()) for n in ("decoder", "discriminator")})

    def same_weights(a, b):  # parameters only: batch-norm statistics follow every forward pass
        return all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)

    assert same_weights(snapshots[0]["discriminator"], snapshots[2]["discriminator"])  # steps 0 and 1: held
    assert not same_weights(snapshots[2]["discriminator"], snapshots[3]["discriminator"])  # step 2 = gan_start
    assert not same_weights(snapshots[0]["decoder"], snapshots[1]["decoder"])  # the decoder learns L_llike


def test_spectral_norm_bounds_every_discriminator_layer_and_keeps_dis_l():
    cfg = build_config("smoke", ["model.spectral_norm=true"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32)
    d = model.discriminator.train()
    for _ in range(30):  # power iterations converge during training forwards
        d(torch.randn(8, 3, 32, 32))
    d.eval()
    for m in d.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight.detach().flatten(1)
            assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, rel=0.05)
    _, features = d(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, model.arch.dis_l_features)
    plain = build_model(dataclasses.replace(cfg.model, spectral_norm=False), 32)
    assert {k for k in plain.state_dict()} != {k for k in model.state_dict()}  # hence an architecture key


def test_discriminator_without_batch_norm_judges_each_image_alone_and_keeps_dis_l():
    cfg = build_config("smoke", ["model.discriminator_norm=none"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32)
    d = model.discriminator.train()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())
    x = torch.randn(6, 3, 32, 32)
    logits, features = d(x)
    alone = [d(x[i:i + 1]) for i in range(len(x))]  # in train mode: BN would change these
    torch.testing.assert_close(torch.cat([a[0] for a in alone]), logits)
    torch.testing.assert_close(torch.cat([a[1] for a in alone]), features)
    # Dis_l is still the output of the dis_l_block-th stride-2 conv, computed by hand from the layers
    h = d.stem(x)
    for conv, _, relu in d.blocks[:model.arch.dis_l_block]:
        h = relu(conv(h))
    torch.testing.assert_close(d.blocks[model.arch.dis_l_block][0](h).flatten(1), features)
    # the paper's discriminator does depend on its batch in train mode (so the check above can fail)
    batch_normed = build_model(dataclasses.replace(cfg.model, discriminator_norm="batch"), 32).discriminator.train()
    assert not torch.allclose(batch_normed(x[:2])[0], batch_normed(x)[0][:2])
    assert {k for k in batch_normed.state_dict()} != {k for k in d.state_dict()}  # hence an architecture key


def test_autoencoder_without_batch_norm_codes_and_decodes_each_image_alone():
    cfg = build_config("smoke", ["model.autoencoder_norm=none"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32)
    encoder, decoder = model.encoder.train(), model.decoder.train()
    for network in (encoder, decoder):
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in network.modules())
    x, z = torch.randn(5, 3, 32, 32), torch.randn(5, cfg.model.latent_dim)
    mu, logvar = encoder(x)
    alone = [encoder(x[i:i + 1]) for i in range(len(x))]  # in train mode: BN would change these
    torch.testing.assert_close(torch.cat([a[0] for a in alone]), mu)
    torch.testing.assert_close(torch.cat([a[1] for a in alone]), logvar)
    torch.testing.assert_close(torch.cat([decoder(z[i:i + 1]) for i in range(len(z))]), decoder(z))
    # the paper's autoencoder does depend on its batch in train mode (so the checks above can fail)
    paper = build_model(dataclasses.replace(cfg.model, autoencoder_norm="batch"), 32)
    assert not torch.allclose(paper.decoder.train()(z[:2]), paper.decoder(z)[:2])
    assert not torch.allclose(paper.encoder.train()(x[:2])[0], paper.encoder(x)[0][:2])
    assert {k for k in paper.state_dict()} != {k for k in model.state_dict()}  # hence an architecture key
    # and a training step runs and moves every network's weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime_for(False, precision="fp32"),
                     noise_seed=0)
    step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), 0)
    for name in ("encoder", "decoder", "discriminator"):
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(name)), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs this there)")
def test_a_gpu_step_issues_no_synchronisation():
    """The same step on a GPU under torch.cuda.set_sync_debug_mode('error'): any synchronisation raises."""
    cfg = build_config("smoke", ["model.width=0.125", "model.encoder_fc=16", "model.latent_dim=4",
                                 "model.discriminator_fc=8", "data.batch_size=4", "objective.equilibrium=true",
                                 "objective.adaptive_gamma=true", "objective.r1_gamma=1.0", "objective.r1_every=2"])
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(cfg.model, 32).to(device, memory_format=torch.channels_last)
    average = WeightAverage(model, 1.0, 0.05)
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime_for(True, device),
                     noise_seed=0, ema=(average, model))
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, device=device)
    step(images, 0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step(images, 1)
        step(images, 2)  # an R1 step
    finally:
        torch.cuda.set_sync_debug_mode("default")
