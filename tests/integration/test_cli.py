"""The command line as a user meets it: help, one-line errors naming what is wrong, and the commands."""

import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.train.launcher import launch


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vaegan_dist.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


# What each command's --help must show: its own usage line and the options or subcommands a user needs.
HELP = {
    (): ("usage: vaegan-dist [-h] COMMAND", "prepare", "train", "sample", "reconstruct", "evaluate", "evaluator",
         "tune", "edit", "report"),
    ("prepare",): ("usage: vaegan-dist prepare", "synthetic", "celeba", "folder"),
    ("prepare", "synthetic"): ("usage: vaegan-dist prepare synthetic", "--out", "--num", "--size"),
    ("train",): ("usage: vaegan-dist train", "--preset", "--show-config", "key=value"),
    ("sample",): ("usage: vaegan-dist sample", "--checkpoint", "--out", "--n", "--set"),
    ("reconstruct",): ("usage: vaegan-dist reconstruct", "--checkpoint", "--data", "--out"),
    ("evaluate",): ("usage: vaegan-dist evaluate", "--checkpoint", "--json", "similarity", "pretraining"),
    ("evaluator", "train"): ("usage: vaegan-dist evaluator train", "--data", "--out", "--epochs"),
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "top")
def test_help_for_every_command(command):
    out = run_cli(*command, "--help")
    assert out.returncode == 0 and out.stderr == ""
    missing = [text for text in HELP[command] if text not in out.stdout]
    assert not missing, f"--help of {' '.join(command) or 'vaegan-dist'} lacks {missing}:\n{out.stdout}"


@pytest.mark.parametrize("args, message", [
    (["train", "train.stepz=5"], "unknown config key 'train.stepz' (did you mean 'train.steps'?)"),
    (["train", "optim.lr_decoder=-3"], "config key 'optim.lr_decoder' must be > 0; got -3.0"),
    (["train", "data.image_size=100"], "config key 'data.image_size' must be one of 32, 64, 128"),
    (["train", "data.source=/no/such/shards"], "/no/such/shards: no such data directory"),
    (["sample", "--checkpoint", "/no/such/run", "--out", "x.png"], "/no/such/run: no such checkpoint"),
    (["train", "model.kind=vqvae"], "config key 'model.kind' must be one of vaegan, vae, vae_disl, gan; got 'vqvae'"),
    (["train", "train.eval_every=-1"], "config key 'train.eval_every' must be >= 0"),
    (["evaluate", "--checkpoint", "/no/such/run"], "/no/such/run: no such checkpoint"),
    (["evaluate", "--checkpoint", "/no/such/run", "--num", "3"], "argument --num: 3 is not in 8..20000"),
    (["evaluator", "train", "--data", "/no/such/shards"], "/no/such/shards: no such data directory"),
    (["prepare", "celeba", "--root", "/no/such/celeba", "--out", "/tmp/x"], "/no/such/celeba: no such directory"),
    (["prepare", "folder", "--root", "/no/such/photos", "--out", "/tmp/x"], "/no/such/photos: no such directory"),
    # negative numbers argparse alone would take for options ("expected at least one argument")
    (["edit", "--checkpoint", "/no/such/run", "--attribute", "Smiling", "--scale", "1", "-inf", "--out", "x.png"],
     "argument --scale: '-inf' is not a finite number"),
    (["evaluate", "--checkpoint", "/no/such/run", "--num", "-1e3"], "argument --num: '-1e3' is not an integer"),
    (["edit", "--checkpoint", "/no/such/run", "--attribute", "Smiling", "--scale", "-1e0", "2", "--out", "x.png"],
     "/no/such/run: no such checkpoint"),  # parsed as -1.0: the error is the next one
])
def test_bad_input_is_one_line_naming_the_culprit(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def test_wrong_image_size_for_the_data(faces32, capsys):
    assert main(["train", f"data.source={faces32}", "data.image_size=64"]) == 2
    assert "images are 32px but data.image_size=64" in capsys.readouterr().err


def test_show_config_prints_resolved_yaml(capsys):
    assert main(["train", "--preset", "celeba64-code", "--show-config", "train.steps=7"]) == 0
    out = capsys.readouterr().out
    assert "steps: 7" in out and "encoder_fc: 1024" in out and "preset: celeba64-code" in out


def test_prepare_synthetic_writes_a_data_set(tmp_path, capsys):
    assert main(["prepare", "synthetic", "--out", str(tmp_path / "d"), "--num", "20", "--size", "32",
                 "--workers", "1"]) == 0
    assert "train 16, valid 2, test 2 images at 32px" in capsys.readouterr().out
    assert main(["prepare", "synthetic", "--out", str(tmp_path / "d"), "--num", "20", "--size", "32"]) == 2


def test_sample_and_reconstruct_from_a_trained_run(faces32, tmp_path, capsys):
    launch(tiny_config(faces32, tmp_path, "cli", "train.steps=2"))
    assert main(["sample", "--checkpoint", str(tmp_path / "cli"), "--out", str(tmp_path / "s.png"), "--n", "16"]) == 0
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "cli" / "checkpoint_00000002"),
                 "--data", str(faces32), "--out", str(tmp_path / "r.png"), "--n", "16"]) == 0
    # 16 images, 8 per row, 2 px padding: 2 rows of samples; reconstructions add a row per row of originals.
    assert Image.open(tmp_path / "s.png").size == (8 * 34 + 2, 2 * 34 + 2)
    assert Image.open(tmp_path / "r.png").size == (8 * 34 + 2, 4 * 34 + 2)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["sample", "--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.pt: not a readable checkpoint" in capsys.readouterr().err


def test_cuda_requested_without_a_gpu(faces32, tmp_path, capsys):
    args = ["train", f"data.source={faces32}", f"train.storage_path={tmp_path}", "train.workers=0", "train.device=cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "config key 'train.device' is cuda but no GPU is available" in err and err.count("\n") == 1
