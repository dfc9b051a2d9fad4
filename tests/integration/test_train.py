"""The training loop in this process (no Ray): learning, checkpoints, resume, TensorBoard."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import vaegan_kernels as kernels
from tests.conftest import tiny_config
from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.stream import first_images
from vaegan_dist.model.store import find_checkpoints, load_model, load_state
from vaegan_dist.train.launcher import launch
from vaegan_dist.train.loop import train_loop
from vaegan_dist.train.resolve import resolve_run
from vaegan_dist.train.session import LocalSession


@torch.no_grad()
def feature_error(model, discriminator, x):
    """L_llike of ``model``'s reconstructions in the feature space of a fixed discriminator (eval mode)."""
    recon = model.decoder(model.encoder(x)[0])
    _, f = discriminator(torch.cat([x, recon]))
    return kernels.feature_nll(f[len(x):], f[: len(x)]).item()


@pytest.mark.slow
def test_short_training_lowers_feature_space_reconstruction_error(faces32, tmp_path):
    base = ["model.width=0.25", "model.encoder_fc=64", "model.latent_dim=16", "data.batch_size=16",
            "train.checkpoint_every=1000", "train.image_every=1000", "train.log_every=50"]
    launch(tiny_config(faces32, tmp_path, "learn", "train.steps=1", *base))
    initial, _, _ = load_model(tmp_path / "learn")
    launch(tiny_config(faces32, tmp_path, "learn", "train.steps=250", *base))
    trained, _, step = load_model(tmp_path / "learn")
    assert step == 250
    x = to_unit_range(first_images(faces32, "valid", 24)[0], torch.device("cpu"))
    judge = trained.discriminator  # the same fixed metric for both models
    before, after = feature_error(initial, judge, x), feature_error(trained, judge, x)
    assert after < 0.85 * before, (before, after)


class RecordingSession(LocalSession):
    """Records each network's weights at the moment the loop wraps it for DDP (right after resuming)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared = {}

    def prepare(self, module):
        self.prepared[len(self.prepared)] = {k: v.clone() for k, v in module.state_dict().items()}
        return super().prepare(module)


def test_rerun_resumes_at_the_saved_step_with_the_same_parameters(faces32, tmp_path):
    cfg = tiny_config(faces32, tmp_path, "resume", "train.steps=6", "train.checkpoint_every=3",
                      "train.keep_checkpoints=5")
    launch(cfg)
    saved = load_state(tmp_path / "resume")
    assert saved["step"] == 6 and [p.name for p in find_checkpoints(tmp_path / "resume")] == [
        "checkpoint_00000003", "checkpoint_00000006"]

    cfg = tiny_config(faces32, tmp_path, "resume", "train.steps=9", "train.checkpoint_every=3",
                      "train.keep_checkpoints=5")
    session = RecordingSession(tmp_path / "resume", keep=5)
    train_loop(resolve_run(cfg), session)
    for index, name in enumerate(("encoder", "decoder", "discriminator")):
        for key, value in session.prepared[index].items():
            torch.testing.assert_close(value, saved["model"][f"{name}.{key}"], rtol=0, atol=0)
    resumed = load_state(tmp_path / "resume")
    assert resumed["step"] == 9 and resumed["data_position"]["stream_id"] == 6
    assert resumed["optimizers"]["encoder"]["state"][0]["step"] == 9  # RMSProp state carried over, not reset


def test_resume_restores_the_weight_average_exactly_and_load_model_uses_it(faces32, tmp_path, monkeypatch):
    ema = ["optim.ema_halflife_kimg=0.05", "train.checkpoint_every=3", "train.keep_checkpoints=5"]
    launch(tiny_config(faces32, tmp_path, "ema", "train.steps=3", *ema))
    saved = load_state(tmp_path / "ema")
    assert set(saved["ema"]) == {"encoder", "decoder"}
    assert not torch.equal(saved["ema"]["decoder"]["fc.0.weight"], saved["model"]["decoder.fc.0.weight"])

    averaged, _, _ = load_model(tmp_path / "ema")
    live, _, _ = load_model(tmp_path / "ema", averaged=False)
    torch.testing.assert_close(averaged.decoder.state_dict()["fc.0.weight"], saved["ema"]["decoder"]["fc.0.weight"],
                               rtol=0, atol=0)
    torch.testing.assert_close(live.decoder.state_dict()["fc.0.weight"], saved["model"]["decoder.fc.0.weight"],
                               rtol=0, atol=0)

    import vaegan_dist.train.loop as loop

    seen = {}

    class Recording(loop.TrainStep):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            average = kwargs["ema"][0]
            seen.update({name: {k: v.clone() for k, v in getattr(average.model, name).state_dict().items()}
                         for name in ("encoder", "decoder")})

    monkeypatch.setattr(loop, "TrainStep", Recording)
    train_loop(resolve_run(tiny_config(faces32, tmp_path, "ema", "train.steps=6", *ema)),
               LocalSession(tmp_path / "ema"))
    for name in ("encoder", "decoder"):
        for key, value in saved["ema"][name].items():
            torch.testing.assert_close(seen[name][key], value, rtol=0, atol=0, msg=f"{name}.{key}")
    assert load_state(tmp_path / "ema")["step"] == 6


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(faces32, tmp_path):
    args = [f"data.source={faces32}", f"train.storage_path={tmp_path}", "train.name=killed", "train.workers=0",
            "data.batch_size=8", "data.loader_workers=0", "model.width=0.125", "model.encoder_fc=32",
            "model.latent_dim=8", "model.discriminator_fc=16", "train.grid_size=8", "train.steps=200",
            "train.checkpoint_every=10", "train.keep_checkpoints=100", "train.log_every=10"]
    cmd = [sys.executable, "-m", "vaegan_dist.cli.main", "train", "--preset", "smoke", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(find_checkpoints(tmp_path / "killed")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    kept = find_checkpoints(tmp_path / "killed")
    assert len(kept) >= 3 and proc.returncode == -signal.SIGKILL
    last = load_state(kept[-1])["step"]
    assert last < 200

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resuming from checkpoint_{last:08d} at step {last}" in out.stdout
    assert load_state(tmp_path / "killed")["step"] == 200


def test_a_resumed_run_keeps_the_events_of_its_checkpoint_step_and_drops_later_ones(faces32, tmp_path):
    """A run killed after step 5 had logged it, resumed from its checkpoint of step 4: the curve shows 2, 4, 6 (4
    from before the kill, the 5 it logged dropped), never a fork."""
    from torch.utils.tensorboard import SummaryWriter

    common = ("train.log_every=2", "train.checkpoint_every=2", "train.precision=fp32")
    launch(tiny_config(faces32, tmp_path, "resumed", "train.steps=4", *common))
    board = tmp_path / "resumed" / "tensorboard"
    # Event files are read in name order: <seconds>.<host>.<pid>.<writer count>. In one process within one second,
    # a count of 10 sorts before 9, which no real kill and rerun (another process, seconds later) can give.
    time.sleep(1.1)
    with SummaryWriter(str(board)) as crashed:  # what the killed run logged past its last checkpoint
        crashed.add_scalar("loss/l_llike", -1.0, 5)
    time.sleep(1.1)
    launch(tiny_config(faces32, tmp_path, "resumed", "train.steps=6", *common))
    events = EventAccumulator(str(board))
    events.Reload()
    curve = events.Scalars("loss/l_llike")
    assert [e.step for e in curve] == [2, 4, 6] and all(e.value > 0 for e in curve)


def test_tensorboard_holds_scalars_images_and_hparams(faces32, tmp_path, capsys):
    launch(tiny_config(faces32, tmp_path, "tb", "train.steps=4", "train.log_every=2", "train.image_every=2",
                       "objective.equilibrium=true", "train.precision=fp32"))
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("loss/l_prior", "loss/l_llike", "loss/l_gan", "loss/l_gen", "gan/d_real", "gan/d_prior",
                "gan/d_recon", "stats/kl_per_dim", "lr/encoder", "lr/decoder", "lr/discriminator",
                "perf/images_per_s", "equilibrium/decoder_skipped", "equilibrium/discriminator_skipped"):
        assert tag in scalars, tag
    assert [e.step for e in events.Scalars("loss/l_llike")] == [2, 4]
    # The step against the device's peak: achieved = counted FLOPs / step time, share = achieved / peak.
    perf = {tag: events.Scalars(f"perf/{tag}")[-1].value for tag in ("step_gflop", "achieved_gflops", "peak_gflops",
                                                                      "peak_share", "step_time_s")}
    assert perf["achieved_gflops"] == pytest.approx(perf["step_gflop"] / perf["step_time_s"], rel=1e-4)
    assert perf["peak_share"] == pytest.approx(perf["achieved_gflops"] / perf["peak_gflops"], rel=1e-4)
    assert 0 < perf["peak_share"] < 2
    out = capsys.readouterr().out
    assert "precision: float32 on CPU" in out and "% of peak |" in out
    assert set(events.Tags()["images"]) == {"samples", "reconstructions"}
    image = events.Images("samples")[-1]
    assert image.step == 4 and image.width > 0
    # TensorBoard's HParams view: this run is a session whose metrics are its own scalar curves.
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(
        events.summary_metadata)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        events.summary_metadata["_hparams_/experiment"].plugin_data.content).experiment
    assert "loss/l_llike" in {m.name.tag for m in experiment.metric_infos}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        events.summary_metadata["_hparams_/session_start_info"].plugin_data.content).session_start_info
    assert start.hparams["model.kind"].string_value == "vaegan"
    assert start.hparams["train.steps"].number_value == 4
    assert not (tmp_path / "tb" / "tensorboard" / "hparams").exists()
    assert sorted(p.name for p in (tmp_path / "tb" / "samples").iterdir()) == [
        "reconstructions_00000002.png", "reconstructions_00000004.png", "samples_00000002.png", "samples_00000004.png"]


def test_finished_run_rerun_does_nothing(faces32, tmp_path, capsys):
    cfg = tiny_config(faces32, tmp_path, "done", "train.steps=2")
    launch(cfg)
    launch(cfg)
    assert "already at step 2 of 2; nothing to do" in capsys.readouterr().out


def test_code_preset_objective_trains(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "code", "train.steps=3", "objective.fakes=prior",
                       "objective.equilibrium=true", "objective.decoder_gan_weight=one_minus_gamma",
                       "objective.discriminator_weighting=half", "optim.schedule=power_anneal",
                       "optim.grad_clip=1.0"))
    state = load_state(tmp_path / "code")
    assert state["step"] == 3 and "grad_norm/encoder" in state["metrics"]
    assert state["metrics"]["lr/encoder"] < 1e-3  # annealed below the base rate
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_checkpoint_cut_short_is_not_resumed_from(faces32, tmp_path):
    cfg = tiny_config(faces32, tmp_path, "cut", "train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=5")
    launch(cfg)
    newest = find_checkpoints(tmp_path / "cut")[-1] / "state.pt"
    newest.write_bytes(newest.read_bytes()[:5000])  # as if a copy had been interrupted
    assert [p.name for p in find_checkpoints(tmp_path / "cut")] == ["checkpoint_00000002"]
    assert load_state(tmp_path / "cut")["step"] == 2


@pytest.mark.parametrize("bad", [[1, 2], {"mystery": {}}, {"decoder": [1, 2, 3]},
                                 {"decoder": {"fc.0.weight": torch.zeros(1)}}])
def test_a_crafted_weight_average_in_a_checkpoint_is_one_error_on_resume(faces32, tmp_path, bad):
    from vaegan_dist.errors import TrainingError
    from vaegan_dist.model.store import STATE_FILE

    ema = ["optim.ema_halflife_kimg=0.05", "train.checkpoint_every=2"]
    launch(tiny_config(faces32, tmp_path, "crafted", "train.steps=2", *ema))
    file = find_checkpoints(tmp_path / "crafted")[-1] / STATE_FILE
    state = torch.load(file, weights_only=True)
    state["ema"] = bad
    torch.save(state, file)
    with pytest.raises(TrainingError, match="the checkpoint's 'ema' entry does not fit the model") as err:
        train_loop(resolve_run(tiny_config(faces32, tmp_path, "crafted", "train.steps=4", *ema)),
                   LocalSession(tmp_path / "crafted"))
    assert "\n" not in str(err.value)
