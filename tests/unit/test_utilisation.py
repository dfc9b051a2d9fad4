"""The step's counted FLOPs against PyTorch's own FlopCounterMode and a hand count, the peak cache, and the share
of peak where users look (the progress line)."""

import contextlib
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vaegan_dist.train.peak as peak
from vaegan_dist.config import build_config
from vaegan_dist.model import build_model
from vaegan_dist.objectives import model_kind
from vaegan_dist.train.flops import StepFlops, Utilisation, count_step_flops
from vaegan_dist.train.progress import progress_line

TINY = ("model.width=0.125", "model.encoder_fc=32", "model.discriminator_fc=16", "model.latent_dim=8")


def _smoke(*overrides):
    cfg = build_config("smoke", [*TINY, *overrides])
    torch.manual_seed(0)
    return cfg, build_model(cfg.model, cfg.data.image_size)


def test_a_step_without_r1_counts_what_flopcountermode_counts():
    """FlopCounterMode (PyTorch's own counter) can count a step without R1; ours must agree to the FLOP."""
    cfg, model = _smoke("objective.r1_gamma=0")
    counted = count_step_flops(model.networks(), model_kind(), cfg.objective, 8, 32, batch=2)
    assert counted.r1_every == 0 and counted.plain == counted.with_r1 == counted.per_step
    x, eps, z_p = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 8), torch.randn(2, 8)
    with FlopCounterMode(display=False) as reference:
        model_kind().forward_backward(model.networks(), x, eps, z_p, cfg.objective, contextlib.nullcontext)
    assert counted.plain == reference.get_total_flops()


def test_a_vae_step_is_counted_as_by_hand():
    """Every conv, transposed conv and linear layer of a VAE step, with the textbook formulas: forward 2*MACs, the
    weight's gradient 2*MACs, the input's gradient 2*MACs except at the encoder's first layer (its input, the data,
    needs none). Shapes come from forward hooks; the formulas are written here, not taken from flop_counter."""
    cfg, model = _smoke("model.kind=vae")
    b = 8
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            macs.append(inputs[0].shape[0] * module.in_features * module.out_features)
        elif isinstance(module, torch.nn.ConvTranspose2d):  # every input pixel scatters a k x k x C_out patch
            n, c_in, h, w = inputs[0].shape
            macs.append(n * c_in * h * w * module.out_channels * module.kernel_size[0] * module.kernel_size[1])
        else:  # every output pixel gathers a k x k x C_in patch
            n, c_out, h, w = output.shape
            macs.append(n * c_out * h * w * module.in_channels * module.kernel_size[0] * module.kernel_size[1])

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        mu, _ = model.encoder(torch.zeros(b, 3, 32, 32))
        model.decoder(mu)
    for h in handles:
        h.remove()
    assert len(macs) == len(layers)
    first = macs[0]  # the encoder's first convolution ran first
    by_hand = sum(3 * 2 * m for m in macs) - 2 * first
    counted = count_step_flops(model.networks(), model_kind("vae"), cfg.objective, 8, 32, batch=b)
    assert counted.plain == by_hand
    assert count_step_flops(model.networks(), model_kind("vae"), cfg.objective, 8, 32, batch=2 * b).plain \
        == 2 * by_hand  # linear in the batch


def test_r1_steps_cost_more_and_the_mean_spreads_them_over_the_interval():
    cfg, model = _smoke()  # the preset: R1 every 4 steps
    f = count_step_flops(model.networks(), model_kind(), cfg.objective, 8, 32, batch=16)
    assert f.r1_every == 4 and f.with_r1 > f.plain
    assert f.per_step == pytest.approx((3 * f.plain + f.with_r1) / 4)
    assert StepFlops(10.0, 30.0, 0).per_step == 10.0


def test_the_share_of_peak_is_achieved_over_peak():
    u = Utilisation(StepFlops(4e9, 4e9, 0), peak_gflops=20.0)
    m = u.metrics(step_time_s=0.5)  # 8 GFLOP/s of 20
    assert m["perf/achieved_gflops"] == pytest.approx(8.0) and m["perf/peak_share"] == pytest.approx(0.4)
    line = progress_line(10, 100, {"perf/images_per_s": 5.0, "perf/step_time_s": 0.5, **m}, world_size=2)
    assert "40% of peak |" in line and "10.0 img/s" in line
    assert "of peak" not in progress_line(10, 100, {"perf/images_per_s": 5.0}, world_size=1)


def test_a_step_well_above_a_peak_measured_on_a_busy_machine_has_it_measured_again(tmp_path, monkeypatch):
    """A peak measured while Ray's workers started (45.6 of 131 GFLOP/s) once showed 216% of peak. Now the share
    never exceeds 1, and a rate beyond R1's 7% margin drops the cached figure: the next run measures again, with
    the rate seen as its floor (a rate reached is a lower bound of the peak, not the peak)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu, path = torch.device("cpu"), tmp_path / "vaegan-dist" / "peak.json"
    key = peak.peak_key(cpu, torch.float32)
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 10.0, "conv": 20.0})
    assert peak.peak_gflops(cpu, torch.float32) == (20.0, False)
    seen = []
    u = Utilisation(StepFlops(4e9, 4e9, 0), peak_gflops=20.0,
                    on_new_peak=lambda rate: seen.append(rate) or peak.raise_peak(key, rate))
    assert u.metrics(step_time_s=0.19)["perf/peak_share"] == pytest.approx(1.0)  # 21 GFLOP/s: within the margin
    assert seen == []
    assert u.metrics(step_time_s=0.1)["perf/peak_share"] == pytest.approx(1.0)  # 40 GFLOP/s against 20
    assert seen == [pytest.approx(40.0)] and u.peak_gflops == pytest.approx(40.0)
    assert u.metrics(step_time_s=0.05)["perf/peak_share"] == pytest.approx(1.0) and len(seen) == 1  # once a run
    assert json.loads(path.read_text()) == {key: {"observed": 40.0}}
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 30.0, "conv": 35.0})  # busy again: the floor
    assert peak.peak_gflops(cpu, torch.float32) == (pytest.approx(40.0), False)
    assert peak.peak_gflops(cpu, torch.float32) == (pytest.approx(40.0), True)
    peak.raise_peak(key, 39.0)  # not above the cached peak: kept as it is
    peak.raise_peak(key, math.inf)
    peak.raise_peak(peak.peak_key(cpu, torch.bfloat16), 99.0)  # no entry for bf16: nothing to raise
    assert json.loads(path.read_text()) == {key: {"matmul": 30.0, "conv": 35.0, "observed": 40.0}}
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 120.0, "conv": 131.0})  # quiet at last
    peak.raise_peak(key, 50.0)
    assert peak.peak_gflops(cpu, torch.float32) == (pytest.approx(131.0), False)


def test_a_failing_peak_update_is_one_warning_not_a_stopped_run(capsys):
    def broken(rate):
        raise OSError("read-only")

    u = Utilisation(StepFlops(4e9, 4e9, 0), peak_gflops=20.0, on_new_peak=broken)
    assert u.metrics(step_time_s=0.1)["perf/peak_share"] == pytest.approx(1.0)
    u.metrics(step_time_s=0.1)
    assert capsys.readouterr().out.count("the device's peak was not updated (OSError: read-only)") == 1


def test_the_training_loop_updates_the_entry_it_read(tmp_path, monkeypatch):
    """The wiring: the worker's own key (its thread count, its precision) is the one raised."""
    from vaegan_dist.train.loop import _utilisation
    from vaegan_dist.train.runtime import runtime_for

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 1e-3, "conv": 1e-3})
    cfg, model = _smoke("train.precision=fp32")
    u = _utilisation(model, cfg, runtime_for(False, precision="fp32"))
    u.metrics(step_time_s=1.0)
    entries = json.loads((tmp_path / "vaegan-dist" / "peak.json").read_text())
    assert list(entries) == [peak.peak_key(torch.device("cpu"), torch.float32)]
    assert entries[peak.peak_key(torch.device("cpu"), torch.float32)]["observed"] == pytest.approx(
        u.flops.per_step / 1e9)


def test_the_peak_is_measured_once_then_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu = torch.device("cpu")
    measured, cached = peak.peak_gflops(cpu, torch.float32)
    assert not cached and math.isfinite(measured) and measured > 0
    calls = []
    monkeypatch.setattr(peak, "measure_peak", lambda *a: calls.append(a) or {"matmul": 1.0, "conv": 2.0})
    assert peak.peak_gflops(cpu, torch.float32) == (measured, True) and not calls
    entries = json.loads((tmp_path / "vaegan-dist" / "peak.json").read_text())
    assert list(entries) == [peak.cache_key(cpu, torch.float32, torch.get_num_threads())]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"KEY": {"matmul": -1, "conv": 5}}',
                                     '{"KEY": {"matmul": NaN, "conv": 5}}', '{"KEY": {"matmul": "9e99", "conv": 5}}',
                                     '{"KEY": 7}', '{"KEY": {"matmul": true, "conv": true}}',
                                     '{"KEY": {"matmul": 1' + "0" * 400 + ', "conv": 5}}',
                                     "[" * 100_000 + "]" * 100_000, "x" * (2 << 20)])
def test_a_bad_cache_is_measured_again_and_rewritten(tmp_path, monkeypatch, content):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu = torch.device("cpu")
    key = peak.cache_key(cpu, torch.float32, torch.get_num_threads())
    path = tmp_path / "vaegan-dist" / "peak.json"
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("KEY", key))
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 3.0, "conv": 4.0})
    assert peak.peak_gflops(cpu, torch.float32) == (4.0, False)
    assert json.loads(path.read_text())[key] == {"matmul": 3.0, "conv": 4.0}


def test_a_cache_that_is_not_a_regular_file_is_not_read(tmp_path, monkeypatch):
    """A FIFO would block the read forever: the peak is measured instead, and a regular file takes its place."""
    import os

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tmp_path / "vaegan-dist" / "peak.json"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 3.0, "conv": 4.0})
    assert peak.peak_gflops(torch.device("cpu"), torch.float32) == (4.0, False)


def test_a_relative_cache_home_is_ignored(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert peak.cache_path().is_absolute()


def test_the_cache_keeps_a_bounded_number_of_machines(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tmp_path / "vaegan-dist" / "peak.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({f"machine {i}": {"matmul": 1.0, "conv": 1.0} for i in range(500)}))
    monkeypatch.setattr(peak, "measure_peak", lambda *a: {"matmul": 3.0, "conv": 4.0})
    peak.peak_gflops(torch.device("cpu"), torch.float32)
    assert len(json.loads(path.read_text())) == 64
