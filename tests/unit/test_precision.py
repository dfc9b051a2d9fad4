"""train.precision: what ``auto`` picks and why, and a bf16 step against the float32 step.

The tolerances of the bf16 step are derived from bf16's unit roundoff u = 2^-8: a loss is a float32 reduction of
values that passed through about 12 bf16 roundings on the way from the image (encoder 4 layers, decoder 4,
discriminator 4), so its relative error is about sqrt(12) u = 1.4% if the roundings are independent; we allow 2%.
Gradients go back through those layers again and are small differences of large activations at
initialisation: measured on this model their relative error is 1-30% per network (cosine to float32's 0.966-0.9999
on AVX2 and AVX-512 CPUs alike), so the test asks for a cosine above 0.9 (a relative error under ~45%): the same
descent direction, not the same digits.
"""

import contextlib
import copy

import pytest
import torch

import vaegan_dist.train.precision as precision
from vaegan_dist.config import ConfigError, build_config
from vaegan_dist.model import build_model
from vaegan_dist.objectives import GanPhase, model_kind
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_fp32_and_bf16_are_what_they_say_and_cuda_auto_is_bf16():
    assert precision.resolve_precision("fp32", CPU) is None
    assert precision.resolve_precision("fp32", CUDA) is None
    assert precision.resolve_precision("bf16", CPU) is torch.bfloat16
    assert precision.resolve_precision("auto", CUDA) is torch.bfloat16
    with pytest.raises(ValueError, match="'fp16'"):
        precision.resolve_precision("fp16", CPU)


@pytest.mark.parametrize("features, cap, aten_routes, expected", [
    (("avx512_bf16",), None, True, torch.bfloat16),  # Zen 4, Cooper Lake
    (("avx512_bf16", "amx"), None, True, torch.bfloat16),  # Sapphire Rapids
    (("avx512_bf16",), "AVX2", True, None),  # oneDNN capped below bf16: emulated
    (("avx512_bf16",), "avx512_core", True, None),  # AVX-512 without its bf16 instructions
    (("avx512_bf16",), "NOT_AN_ISA", True, None),  # a cap we do not know: not trusted to allow bf16
    (("amx",), "AVX512_CORE_AMX", True, torch.bfloat16),
    (("avx512_bf16",), None, False, None),  # ATen does not hand bf16 convolutions to oneDNN
    ((), None, True, None),  # an AVX2 CPU
])
def test_auto_on_a_cpu_follows_its_bf16_instructions_and_onednns_cap(monkeypatch, features, cap, aten_routes,
                                                                     expected):
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: features)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: aten_routes, raising=False)
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    if cap is not None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert precision.resolve_precision("auto", CPU) is expected


def test_onednns_old_cap_name_counts_too(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("avx512_bf16",))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert precision.resolve_precision("auto", CPU) is None


@pytest.mark.parametrize("native, steps, every", [(True, 1000, 250), (False, 400, 100)])
def test_the_main_job_spends_native_bf16s_speed_on_steps_and_elsewhere_stays_as_it_was(monkeypatch, native, steps,
                                                                                        every):
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("avx512_bf16",) if native else ())
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    cfg = build_config("smoke")
    assert (cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every) == (steps, every, every)
    # the user's length wins, and evaluations and checkpoints follow it (every quarter, 100 steps at least)
    cfg = build_config("smoke", ["train.steps=2000"])
    assert (cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every) == (2000, 500, 500)
    cfg = build_config("smoke", ["train.steps=7", "train.eval_every=3"])
    assert (cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every) == (7, 3, 100)
    # float32 asked for, or oneDNN capped below bf16 on the same CPU: float32's length
    assert build_config("smoke", ["train.precision=fp32"]).train.steps == 400
    assert build_config("smoke", ["train.precision=bf16"]).train.steps == steps  # emulated bf16 is no faster
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert build_config("smoke").train.steps == 400
    assert build_config("celeba64").train.steps == 62500  # the paper's presets are the paper's, on any machine


def test_the_real_detection_agrees_with_the_cpu_flags():
    """An independent reading of the same fact: the kernel's own list of CPU flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags here")
    from_flags = ("avx512_bf16" in flags) or ("amx_tile" in flags)
    assert bool(precision.cpu_bf16_features()) == from_flags


def test_a_bad_precision_is_one_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="train.precision"):
        build_config("smoke", ["train.precision=fp16"])


def _forward_backward(model, cfg, batch, autocast):
    x, eps, z_p = batch
    outcome = model_kind().forward_backward(model.networks(), x, eps, z_p, cfg.objective, autocast, None,
                                            GanPhase(gan_on=True, r1_now=True))
    grads = {name: torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
             for name, net in model.networks().items()}
    return outcome.metrics, grads


def test_a_bf16_step_matches_the_float32_step_within_bf16s_roundoff():
    cfg = build_config("smoke", [])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32).to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(1)
    batch = (torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1, torch.randn(4, 32, generator=gen),
             torch.randn(4, 32, generator=gen))
    m32, g32 = _forward_backward(copy.deepcopy(model), cfg, batch, contextlib.nullcontext)
    m16, g16 = _forward_backward(copy.deepcopy(model), cfg, batch,
                                 lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    for key in ("loss/l_llike", "loss/l_prior", "loss/l_gan", "loss/l_gen", "gan/real_cost", "gan/fake_cost"):
        assert m16[key].dtype == torch.float32, key  # losses and the equilibrium's costs are formed in float32
        assert m16[key].item() == pytest.approx(m32[key].item(), rel=0.02), key
    assert m16["loss/r1"].item() == m32["loss/r1"].item()  # R1 runs outside autocast: float32 in both
    for name in g32:
        assert g16[name].dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(g16[name].double(), g32[name].double(), dim=0).item()
        assert cosine > 0.9, f"{name}: cosine {cosine:.3f} to the float32 gradient"


def test_a_bf16_training_step_keeps_weights_gradients_and_optimiser_state_in_float32():
    cfg = build_config("smoke", ["optim.ema_halflife_kimg=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32).to(memory_format=torch.channels_last)
    runtime = runtime_for(False, precision="bf16")
    assert runtime.autocast_dtype is torch.bfloat16
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime, noise_seed=0)
    metrics = step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), 0)
    assert all(v.dtype == torch.float32 for k, v in metrics.items() if k.startswith(("loss/", "gan/"))), metrics
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p).all(), name
    for opt in step.optimizers.values():
        for state in opt.state.values():
            assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point() and t.dim() > 0)
