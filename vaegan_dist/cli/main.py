"""``vaegan-dist``: prepare data, train, and use a trained model.

    vaegan-dist prepare synthetic --out ~/data/faces64 --num 20000 --size 64
    vaegan-dist prepare celeba --root ~/celeba --out ~/data/celeba64 --size 64
    vaegan-dist train --preset smoke                          # 2 Ray workers on the built-in faces
    vaegan-dist train --preset celeba64 data.source=/data/celeba64 train.workers=8
    vaegan-dist sample --checkpoint ~/vaegan-dist/runs/<run> --out samples.png
    vaegan-dist reconstruct --checkpoint ~/vaegan-dist/runs/<run> --data ~/data/faces64 --out recon.png
    vaegan-dist evaluate --checkpoint ~/vaegan-dist/runs/<run> --json metrics.json
    vaegan-dist edit --checkpoint ~/vaegan-dist/runs/<run> --attribute Eyeglasses --image me.jpg --out edits.png
    vaegan-dist evaluate similarity --checkpoint RUN_VAE RUN_GAN RUN_VAEGAN --json table.json  # conditioned runs
    vaegan-dist evaluate pretraining --checkpoint ~/vaegan-dist/runs/<run> --json pretraining.json
    vaegan-dist evaluator train --data ~/data/celeba64          # once per data set (automatic for built-in)
    vaegan-dist tune --space gamma --trials 8 train.workers=1 train.cpus_per_worker=0.49

Errors in input (config keys and values, missing data or checkpoints) end with one line naming the key,
value or file at fault and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from vaegan_dist.cli import commands
from vaegan_dist.config import PRESETS
from vaegan_dist.data.convert import MAX_WORKERS, SIZE_RANGE

MAX_SHARD_SAMPLES = 100_000  # a shard is held in memory until it is full
MAX_GRID = 1024  # images in a sample or reconstruction grid
MAX_EVAL = 20_000  # held-out images of one evaluation (precision/recall hold N x N distances)


def int_range(low: int, high: int | None = None):
    """An argparse type: an integer in low..high (high None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is not an integer") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def finite_float(text: str) -> float:
    """An argparse type: a finite number (nan and inf are refused here, not deep in a computation)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a finite number")
    return value


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (argparse prints its whole usage block first), and
    negative numbers that argparse would take for options (``--scale -inf``, ``-1e3``) passed as values."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([_as_value(a) for a in args], namespace)


def _as_value(arg: str) -> str:
    """argparse reads only ``-1`` and ``-.5`` as negative numbers; every other token starting with '-' is an
    option, so ``--scale -1e3`` or ``-inf`` fails with "expected one argument" before our type can say what
    is wrong. A leading space makes such a token a value (float() strips it; no option of ours is numeric)."""
    if arg[:1] == "-" and not arg.startswith("--"):
        try:
            float(arg)
        except ValueError:
            return arg
        return " " + arg
    return arg


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vaegan-dist", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = sub.add_parser("prepare", help="write a data set as webdataset shards with a manifest")
    kinds = prepare.add_subparsers(dest="kind", required=True, metavar="KIND")
    syn = kinds.add_parser("synthetic", help="the built-in procedural faces with CelebA attribute names")
    syn.add_argument("--out", required=True, help="directory to create (must not hold a data set yet)")
    syn.add_argument("--num", type=int_range(10), default=20000, help="images in total (80/10/10 train/valid/test)")
    syn.add_argument("--size", type=int, default=64, choices=(32, 64, 128), help="image side in pixels")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=None,
                     help="rendering processes (default: CPU count, max 8)")
    syn.add_argument("--shard-samples", type=int_range(1, MAX_SHARD_SAMPLES), default=1000, help="images per shard")
    syn.set_defaults(func=commands.prepare_synthetic)

    celeba = kinds.add_parser("celeba", help="CelebA in its standard layout (img_align_celeba/, list_attr_celeba.txt, "
                                             "list_eval_partition.txt); rerun to resume an interrupted conversion")
    celeba.add_argument("--root", required=True, help="the directory holding img_align_celeba/ and the two lists")
    celeba.add_argument("--out", required=True, help="directory for the shards and manifest.json")
    celeba.add_argument("--size", type=int_range(*SIZE_RANGE), default=64,
                        help=f"image side in pixels, {SIZE_RANGE[0]}..{SIZE_RANGE[1]} (default 64)")
    celeba.add_argument("--crop", default="paper", choices=("paper", "square"),
                        help="paper: rows 40:188, cols 15:163 (the face); square: the centred 178x178")
    celeba.add_argument("--shard-samples", type=int_range(1, MAX_SHARD_SAMPLES), default=1000, help="images per shard")
    celeba.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=None,
                        help="processes (default: CPU count, max 8)")
    celeba.add_argument("--encoding", default="jpg", choices=("jpg", "png", "raw"),
                        help="stored image format (default jpg; see bench/RESULTS.md)")
    celeba.set_defaults(func=commands.prepare_celeba)

    folder = kinds.add_parser("folder", help="any folder of jpg/png/webp images, recursively; centred square crop")
    folder.add_argument("--root", required=True)
    folder.add_argument("--out", required=True)
    folder.add_argument("--size", type=int_range(*SIZE_RANGE), default=64,
                        help=f"image side in pixels, {SIZE_RANGE[0]}..{SIZE_RANGE[1]} (default 64)")
    folder.add_argument("--attributes", default=None, help="CSV with a header 'file,<name>,...' and 0/1 values")
    folder.add_argument("--shard-samples", type=int_range(1, MAX_SHARD_SAMPLES), default=1000)
    folder.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=None)
    folder.add_argument("--encoding", default="jpg", choices=("jpg", "png", "raw"))
    folder.set_defaults(func=commands.prepare_folder)

    train = sub.add_parser("train", help="train a VAE/GAN (rerun with the same train.name to resume)",
                           description="Train from a preset with key=value overrides, e.g. train.steps=500 "
                                       "objective.gamma=1e-3. `--show-config` prints every key.")
    train.add_argument("--preset", default="smoke", choices=sorted(PRESETS), help="starting config (default: smoke)")
    train.add_argument("--show-config", action="store_true", help="print the resolved config as YAML and exit")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied in order")
    train.set_defaults(func=commands.train)

    sample = sub.add_parser("sample", help="decode random latent codes into an image grid")
    sample.add_argument("--checkpoint", required=True, help="state.pt, a checkpoint directory or a run directory")
    sample.add_argument("--out", required=True, help="PNG file to write")
    sample.add_argument("--n", type=int_range(1, MAX_GRID), default=64, help=f"number of images (1..{MAX_GRID})")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--set", action="extend", nargs="+", default=[], metavar="NAME=0|1",
                        help="attribute-conditioned models: generate faces with this attribute set (or unset); the "
                             "others follow real images of --split")
    sample.add_argument("--data", default=None, help="conditioned models: where the attribute combinations come from "
                                                     "(default: what the run trained on)")
    sample.add_argument("--split", default="test", help="conditioned models: the split of --data (default test)")
    sample.set_defaults(func=commands.sample)

    recon = sub.add_parser("reconstruct", help="encode and decode images from shards; originals and "
                                               "reconstructions in alternating rows")
    recon.add_argument("--checkpoint", required=True, help="state.pt, a checkpoint directory or a run directory")
    recon.add_argument("--data", required=True, help="shard directory or manifest.json")
    recon.add_argument("--split", default="valid")
    recon.add_argument("--out", required=True, help="PNG file to write")
    recon.add_argument("--n", type=int_range(1, MAX_GRID), default=32, help=f"number of images (1..{MAX_GRID})")
    recon.set_defaults(func=commands.reconstruct)

    evaluate = sub.add_parser("evaluate", help="every metric of a trained model (fd, fd_recon, attr_agreement, "
                                               "pixel_mse, feature_mse, sharpness_ratio, precision, recall, fid)")
    evaluate.add_argument("--checkpoint", default=None,
                          help="state.pt, a checkpoint directory or a run directory (required)")
    evaluate.add_argument("--data", default=None, help="shard directory or manifest (default: what the run trained on)")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--num", type=int_range(8, MAX_EVAL), default=2000,
                          help=f"held-out images, and as many samples (8..{MAX_EVAL}; fewer if the split is smaller)")
    evaluate.add_argument("--json", default=None, metavar="OUT", help="also write the metrics to this JSON file")
    evaluate.add_argument("--evaluator", default="", help="an evaluator file (default: the cached one for the data)")
    evaluate.add_argument("--inception-weights", default=None, metavar="PATH",
                          help="a local torchvision Inception v3 weights file: adds fid (never downloaded)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the samples drawn from p(z)")
    evaluate.set_defaults(func=commands.evaluate)
    experiments = evaluate.add_subparsers(dest="experiment", metavar="{similarity,pretraining}",
                                          help="the paper's experiments (leave out for the metrics above)")

    similarity = experiments.add_parser(
        "similarity", help="attribute-conditioned models generate faces from test images' attributes; the evaluator "
                           "scores how well they match (the paper's Table 1)")
    similarity.add_argument("--checkpoint", dest="checkpoints", action="extend", nargs="+", required=True,
                            metavar="C", help="conditioned models' checkpoints or run directories, one row each")
    similarity.add_argument("--data", default=None, help="shard directory or manifest (default: the first run's data)")
    similarity.add_argument("--split", default="test")
    similarity.add_argument("--num", type=int_range(8, MAX_EVAL), default=2000, help="test images (one face each)")
    similarity.add_argument("--evaluator", default="", help="an evaluator file (default: the cached one for the data)")
    similarity.add_argument("--seed", type=int, default=0, help="seed of the z each face is generated from")
    similarity.add_argument("--json", dest="experiment_json", default=None, metavar="OUT",
                            help="also write the table to this JSON file")
    similarity.set_defaults(func=commands.evaluate_similarity)

    pretraining = experiments.add_parser(
        "pretraining", help="attribute classifiers on the discriminator's network (frozen, fine-tuned) against the "
                            "same from scratch, with 1%%, 10%% and 100%% of the labels")
    pretraining.add_argument("--checkpoint", dest="pretrained", required=True,
                             help="a vaegan, vae_disl or gan checkpoint or run directory")
    pretraining.add_argument("--data", default=None, help="shard directory or manifest with train, valid and test "
                                                          "(default: what the run trained on)")
    pretraining.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0],
                             help="label fractions (default 0.01 0.1 1)")
    pretraining.add_argument("--steps", type=int_range(1, 1_000_000), default=1000,
                             help="optimiser steps per classifier")
    pretraining.add_argument("--train-images", type=int_range(1, 200_000), default=20_000,
                             help="training images the labels are drawn from")
    pretraining.add_argument("--seed", type=int, default=0)
    pretraining.add_argument("--json", dest="experiment_json", default=None, metavar="OUT",
                             help="also write the table to this JSON file")
    pretraining.set_defaults(func=commands.evaluate_pretraining)

    edit = sub.add_parser("edit", help="add or remove attributes (eyeglasses, smiling, ...) with attribute vectors: "
                          "a grid and the share of images the evaluator says the edit changed")
    edit.add_argument("--checkpoint", required=True, help="state.pt, a checkpoint directory or a run directory")
    edit.add_argument("--attribute", action="extend", nargs="+", required=True, metavar="NAME",
                      help="an attribute of the data (repeat for several), e.g. Eyeglasses")
    edit.add_argument("--scale", action="extend", nargs="+", type=finite_float, metavar="S",
                      help="multiple of the vector added (repeatable; negative removes; default -1, 1, 2)")
    edit.add_argument("--image", action="extend", nargs="+", default=[], metavar="FILE",
                      help="edit this jpg/png/webp photo instead of test images (repeatable; "
                           "cropped like prepare folder)")
    edit.add_argument("--data", default=None, help="shard directory or manifest (default: what the run trained on)")
    edit.add_argument("--split", default="test", help="the split whose images are edited (default test)")
    edit.add_argument("--num", type=int_range(1, MAX_EVAL), default=256, help="images edited and scored")
    edit.add_argument("--show", type=int_range(1, 64), default=8, help="images shown per attribute in the grid")
    edit.add_argument("--vector-images", type=int_range(2, 1_000_000), default=10_000,
                      help="training images encoded for the vectors (paper: 10000)")
    edit.add_argument("--evaluator", default="", help="an evaluator file (default: the cached one for the data)")
    edit.add_argument("--out", required=True, help="PNG file for the grid")
    edit.add_argument("--json", default=None, metavar="OUT", help="also write the scores to this JSON file")
    edit.set_defaults(func=commands.edit)

    tune = sub.add_parser("tune", help="sweep hyperparameters with Ray Tune: one run per trial, results.csv, "
                                       "the best trial", description="Sweep a search space (a YAML file of config "
                          "keys and distributions, or a ready one: gamma, lrs, paper) over the cluster. "
                          "`--resume --name SWEEP` continues an interrupted sweep as it was started.")
    tune.add_argument("--space", default=None, help="search space file, or gamma | lrs | paper (tune/spaces)")
    tune.add_argument("--trials", type=int_range(1, 10_000), default=None,
                      help="samples to draw (random, optuna; default 8); grid search runs every combination once")
    tune.add_argument("--scheduler", default=None, choices=("asha", "fifo"),
                      help="asha (default) stops bad trials at the evaluation steps; fifo runs every trial to the end")
    tune.add_argument("--search", default=None, choices=("random", "grid", "optuna"),
                      help="default random; optuna needs the optional extra: pip install 'vaegan-dist[optuna]'")
    tune.add_argument("--metric", default=None, help="what trials are compared on (default eval/fd)")
    tune.add_argument("--mode", default=None, choices=("min", "max"), help="default: min for fd and losses, "
                                                                          "max for attr_agreement, precision, ...")
    tune.add_argument("--name", default="", help="the sweep's directory under train.storage_path "
                                                "(default sweep-<date>-<time>)")
    tune.add_argument("--resume", action="store_true",
                      help="continue the sweep --name as it was started: finished trials are kept, unfinished and "
                           "errored ones continue from their checkpoints; only train.storage_path, ray.address, "
                           "train.start_timeout_s and train.start_retries may be given")
    tune.add_argument("--preset", default=None, choices=sorted(PRESETS), help="base config (default: smoke)")
    tune.add_argument("--seed", type=int, default=None, help="seed of the random, grid or optuna search (default 0)")
    tune.add_argument("overrides", nargs="*", metavar="key=value", help="base config overrides for every trial")
    tune.set_defaults(func=commands.tune)

    evaluator = sub.add_parser("evaluator", help="the attribute classifier whose features the metrics use")
    evaluator_sub = evaluator.add_subparsers(dest="action", required=True, metavar="ACTION")
    ev_train = evaluator_sub.add_parser("train", help="train one on a data set's train split, early-stopped on "
                                                      "valid, scored on test")
    ev_train.add_argument("--data", required=True, help="shard directory or manifest with train, valid and test")
    ev_train.add_argument("--out", default=None, help="file to write (default: the cache, where evaluate and "
                                                      "training look for it)")
    ev_train.add_argument("--cache-dir", default="~/vaegan-dist/data", help="data.cache_dir (default %(default)s)")
    ev_train.add_argument("--seed", type=int, default=0)
    ev_train.add_argument("--epochs", type=int_range(1, 1000), default=25, help="at most this many epochs")
    ev_train.set_defaults(func=commands.evaluator_train)

    report = sub.add_parser("report", help="one self-contained HTML page showing runs side by side: samples, "
                                           "reconstructions, metrics, edits, similarity, pretraining")
    report.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run directories (at most 32)")
    report.add_argument("--out", required=True, help="HTML file to write (.html or .htm; replaced if it exists)")
    report.add_argument("--title", default="vaegan-dist report", help="the page's heading (default %(default)s)")
    report.set_defaults(func=commands.report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except commands.USER_ERRORS as err:
        print(f"vaegan-dist {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: files are written under temporary names, so nothing is half-written
        print(f"vaegan-dist {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
