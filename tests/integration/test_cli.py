"""The command line as a user meets it: help, one-line errors naming what is wrong, and the commands."""

import argparse
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import tiny_config
from vaegan_dist.cli.arguments import CHECKPOINT_HELP
from vaegan_dist.cli.main import build_parser, main
from vaegan_dist.train.launcher import launch


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vaegan_dist.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def cli(capsys, *args) -> tuple[int, str, str]:
    """The CLI in this process, as its entry point calls it (``sys.exit(main())``): exit code, stdout, stderr.
    Each command in a fresh process cost ~1.8 s of imports; test_the_entry_point_runs_as_its_own_process keeps
    the real process honest."""
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse: --help exits 0, a usage error 2
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


# What each command's --help must show: its own usage line and the options or subcommands a user needs.
HELP = {
    (): ("usage: vaegan-dist [-h] COMMAND", "prepare", "train", "sample", "reconstruct", "evaluate", "evaluator",
         "tune", "edit", "report", "similarity", "pretraining", "commands, by what they are for:"),
    ("prepare",): ("usage: vaegan-dist prepare", "synthetic", "celeba", "folder"),
    ("prepare", "synthetic"): ("usage: vaegan-dist prepare synthetic", "--out", "--num", "--size"),
    ("train",): ("usage: vaegan-dist train", "--preset", "--show-config", "key=value"),
    ("sample",): ("usage: vaegan-dist sample", "--checkpoint", "--out", "--n", "--set"),
    ("reconstruct",): ("usage: vaegan-dist reconstruct", "--checkpoint", "--data", "--out", "(default valid)"),
    ("evaluate",): ("usage: vaegan-dist evaluate", "--checkpoint", "--json", "--num", "(default test)"),
    ("similarity",): ("usage: vaegan-dist similarity", "--checkpoint C [C ...]", "--json", "--evaluator"),
    ("pretraining",): ("usage: vaegan-dist pretraining", "--checkpoint", "--fractions", "--json"),
    ("evaluator", "train"): ("usage: vaegan-dist evaluator train", "--data", "--out", "--epochs"),
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "top")
def test_help_for_every_command(command, capsys):
    code, out, err = cli(capsys, *command, "--help")
    assert code == 0 and err == ""
    missing = [text for text in HELP[command] if text not in out]
    assert not missing, f"--help of {' '.join(command) or 'vaegan-dist'} lacks {missing}:\n{out}"


def test_the_entry_point_runs_as_its_own_process():
    """`python -m vaegan_dist.cli.main` (what the vaegan-dist script runs): help on stdout, and a user's mistake as
    exit code 2 with one line on stderr."""
    out = run_cli("--help")
    assert out.returncode == 0 and out.stderr == "" and out.stdout.startswith("usage: vaegan-dist [-h] COMMAND")
    out = run_cli("train", "train.stepz=5")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == ("vaegan-dist train: error: unknown config key 'train.stepz' (did you mean "
                                  "'train.steps'?)")


def commands_of(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand the parser has, read from argparse's own structure."""
    found = []
    for action in parser._actions:  # argparse offers no public walk of its subcommands
        for name, sub in (action.choices or {}).items() if isinstance(action, argparse._SubParsersAction) else ():
            found += [(*path, name), *commands_of(sub, (*path, name))]
    return found


def test_every_command_has_help_and_a_shared_option_reads_the_same_everywhere():
    parser = build_parser()
    every = commands_of(parser)
    assert len(every) == 16 and ("similarity",) in every and ("evaluate", "similarity") not in every
    helps: dict[str, set[str]] = {}
    for command in every:
        sub = parser
        for name in command:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert sub.format_help().startswith(f"usage: vaegan-dist {' '.join(command)}")
        for action in sub._actions:
            if action.option_strings:
                helps.setdefault(action.option_strings[0], set()).add(str(action.help))
    # Declared once (arguments.py): the same words wherever the option appears.
    assert len(helps["--evaluator"]) == 1
    assert {h.rsplit(": ", 1)[-1] for h in helps["--checkpoint"]} == {CHECKPOINT_HELP}
    run_data = {h for h in helps["--data"] if "default: what the run trained on" in h}
    assert len(run_data) == 1 and len(helps["--data"]) == 2  # and evaluator train's own (it has no run)


def test_each_command_keeps_its_own_defaults():
    """The shared options are built per command: one command's default never leaks into another's."""
    parse = build_parser().parse_args
    assert parse(["reconstruct", "--checkpoint", "c", "--out", "o.png"]).split == "valid"
    assert parse(["evaluate", "--checkpoint", "c"]).split == "test"
    assert parse(["edit", "--checkpoint", "c", "--attribute", "Smiling", "--out", "o.png"]).num == 256
    assert parse(["evaluate", "--checkpoint", "c"]).num == 2000
    assert parse(["similarity", "--checkpoint", "a", "b", "--checkpoint", "c"]).checkpoint == ["a", "b", "c"]
    assert not hasattr(parse(["pretraining", "--checkpoint", "c"]), "split")  # it uses every split


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
    (["evaluate", "similarity", "--checkpoint", "/no/such/run"], "unrecognized arguments: similarity"),
    (["similarity", "--checkpoint", "/no/such/run", "--num", "2"], "argument --num: 2 is not in 8..20000"),
    (["pretraining", "--checkpoint", "/no/such/run"], "/no/such/run: no such checkpoint"),
    (["prepare", "celeba", "--root", "/no/such/celeba", "--out", "/tmp/x"], "/no/such/celeba: no such directory"),
    (["prepare", "folder", "--root", "/no/such/photos", "--out", "/tmp/x"], "/no/such/photos: no such directory"),
    # negative numbers argparse alone would take for options ("expected at least one argument")
    (["edit", "--checkpoint", "/no/such/run", "--attribute", "Smiling", "--scale", "1", "-inf", "--out", "x.png"],
     "argument --scale: '-inf' is not a finite number"),
    (["evaluate", "--checkpoint", "/no/such/run", "--num", "-1e3"], "argument --num: '-1e3' is not an integer"),
    (["edit", "--checkpoint", "/no/such/run", "--attribute", "Smiling", "--scale", "-1e0", "2", "--out", "x.png"],
     "/no/such/run: no such checkpoint"),  # parsed as -1.0: the error is the next one
])
def test_bad_input_is_one_line_naming_the_culprit(args, message, capsys):
    code, _, err = cli(capsys, *args)
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0, err


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
    text = tmp_path / "me.png"
    text.write_text("not an image")
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "cli"), "--image", str(tmp_path / "none.png"),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert f"--image {tmp_path / 'none.png'}: no such file" in capsys.readouterr().err
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "cli"), "--image", str(text),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert f"--image {text}: unreadable image" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "cli"), "--image", str(tmp_path),
                 "--out", str(tmp_path / "x.png")]) == 2
    assert f"--image {tmp_path}: is a directory" in capsys.readouterr().err
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "cli"), "--image", str(text), "--n", "4",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "--n: counts held-out images" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["sample", "--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.pt: not a readable checkpoint" in capsys.readouterr().err


def test_cuda_requested_without_a_gpu(faces32, tmp_path, capsys):
    args = ["train", f"data.source={faces32}", f"train.storage_path={tmp_path}", "train.workers=0", "train.device=cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "config key 'train.device' is cuda but no GPU is available" in err and err.count("\n") == 1
