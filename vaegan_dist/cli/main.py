"""``vaegan-dist``: prepare data, train, and use and measure a trained model.

    vaegan-dist prepare synthetic --out ~/data/faces64 --num 20000 --size 64
    vaegan-dist prepare celeba --root ~/celeba --out ~/data/celeba64 --size 64
    vaegan-dist train --preset smoke                          # 2 Ray workers on the built-in faces
    vaegan-dist train --preset celeba64 data.source=/data/celeba64 train.workers=8
    vaegan-dist tune --space gamma --trials 8 train.workers=1 train.cpus_per_worker=0.49
    vaegan-dist tune --space gamma --scheduler pbt --trials 4    # population-based training
    vaegan-dist sample --checkpoint ~/vaegan-dist/runs/<run> --out samples.png
    vaegan-dist reconstruct --checkpoint ~/vaegan-dist/runs/<run> --out recon.png
    vaegan-dist edit --checkpoint ~/vaegan-dist/runs/<run> --attribute Eyeglasses --image me.jpg --out edits.png
    vaegan-dist evaluate --checkpoint ~/vaegan-dist/runs/<run> --json metrics.json
    vaegan-dist similarity --checkpoint RUN_VAE RUN_GAN RUN_VAEGAN --json table.json   # conditioned runs
    vaegan-dist pretraining --checkpoint ~/vaegan-dist/runs/<run> --json pretraining.json
    vaegan-dist evaluator train --data ~/data/celeba64          # once per data set (automatic for built-in)
    vaegan-dist report --runs ~/vaegan-dist/runs/<run> ... --out report.html
    vaegan-dist serve --checkpoint ~/vaegan-dist/runs/<run>      # Ray Serve; the face-editing page at /

Errors in input (config keys and values, missing data or checkpoints) end with one line naming the key,
value or file at fault and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol

from vaegan_dist.cli import commands
from vaegan_dist.cli.arguments import (
    MAX_GRID,
    OneLineParser,
    app_name,
    checkpoint_option,
    data_options,
    evaluator_option,
    finite_float,
    host_name,
    int_range,
    json_option,
    num_option,
    photo_size_option,
    png_out_option,
    seed_option,
    shard_options,
)
from vaegan_dist.config import PRESETS
from vaegan_tune.space import ready_spaces


class Commands(Protocol):
    """What ``add_subparsers`` returns, as far as the functions below use it (argparse has no public name for it)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


GROUPS = """commands, by what they are for:
  data               prepare
  training           train, tune
  using a model      sample, reconstruct, edit, serve
  measuring a model  evaluate, similarity, pretraining (the paper's experiments), evaluator, report

`vaegan-dist COMMAND --help` shows a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vaegan-dist", description="The VAE/GAN of Larsen et al. (2016): prepare data, train, "
                                                       "and use and measure a trained model.", epilog=GROUPS,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_prepare, add_train, add_tune, add_sample, add_reconstruct, add_edit, add_evaluate,
                add_similarity, add_pretraining, add_evaluator, add_report, add_serve):
        add(commands_)
    return parser


def add_prepare(commands_: Commands) -> None:
    prepare = commands_.add_parser("prepare", help="write a data set as webdataset shards with a manifest")
    kinds = prepare.add_subparsers(dest="kind", required=True, metavar="KIND")

    synthetic = kinds.add_parser("synthetic", parents=[shard_options(encoding=False)],
                                 help="the built-in procedural faces with CelebA attribute names")
    synthetic.add_argument("--out", required=True, help="directory to create (must not hold a data set yet)")
    synthetic.add_argument("--num", type=int_range(10), default=20000,
                           help="images in total (80/10/10 train/valid/test)")
    synthetic.add_argument("--size", type=int, default=64, choices=(32, 64, 128), help="image side in pixels")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.set_defaults(func=commands.prepare_synthetic)

    celeba = kinds.add_parser("celeba", parents=[photo_size_option(), shard_options()],
                              help="CelebA in its standard layout (img_align_celeba/, list_attr_celeba.txt, "
                                   "list_eval_partition.txt); rerun to resume an interrupted conversion")
    celeba.add_argument("--root", required=True, help="the directory holding img_align_celeba/ and the two lists")
    celeba.add_argument("--out", required=True, help="directory for the shards and manifest.json")
    celeba.add_argument("--crop", default="paper", choices=("paper", "square"),
                        help="paper: rows 40:188, cols 15:163 (the face); square: the centred 178x178")
    celeba.set_defaults(func=commands.prepare_celeba)

    folder = kinds.add_parser("folder", parents=[photo_size_option(), shard_options()],
                              help="any folder of jpg/png/webp images, recursively; centred square crop")
    folder.add_argument("--root", required=True, help="the folder of images")
    folder.add_argument("--out", required=True, help="directory for the shards and manifest.json")
    folder.add_argument("--attributes", default=None, help="CSV with a header 'file,<name>,...' and 0/1 values")
    folder.set_defaults(func=commands.prepare_folder)


def add_train(commands_: Commands) -> None:
    train = commands_.add_parser("train", help="train a VAE/GAN (rerun with the same train.name to resume)",
                                 description="Train from a preset with key=value overrides, e.g. train.steps=500 "
                                             "objective.gamma=1e-3. `--show-config` prints every key.")
    train.add_argument("--preset", default="smoke", choices=sorted(PRESETS), help="starting config (default: smoke)")
    train.add_argument("--show-config", action="store_true", help="print the resolved config as YAML and exit")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied in order")
    train.set_defaults(func=commands.train)


def add_tune(commands_: Commands) -> None:
    tune = commands_.add_parser(
        "tune", help="sweep hyperparameters with Ray Tune: one run per trial, results.csv, the best trial",
        description="Sweep a search space (a YAML file of config keys and distributions, or a ready one: "
                    f"{', '.join(ready_spaces())}) over the cluster. `--resume --name SWEEP` continues an "
                    "interrupted sweep as it was started.")
    tune.add_argument("--space", default=None,
                      help=f"search space file, or {' | '.join(ready_spaces())} (tune/spaces)")
    tune.add_argument("--trials", type=int_range(1, 10_000), default=None,
                      help="samples to draw (random, optuna; default 8); grid search runs every combination once")
    tune.add_argument("--scheduler", default=None, choices=("asha", "fifo", "pbt"),
                      help="asha (default) stops bad trials at the evaluation steps; fifo runs every trial to the end; "
                           "pbt (population-based training) has the bottom trials copy the top ones' checkpoints and "
                           "go on with their values, perturbed")
    tune.add_argument("--perturb-every", type=int_range(1), default=None, metavar="STEPS",
                      help="pbt: steps between perturbations (default: train.eval_every; for a training-loss "
                           "--metric, train.checkpoint_every)")
    tune.add_argument("--quantile", type=finite_float, default=None,
                      help="pbt: the share of trials that copy, and of trials copied (default 0.25, at most 0.5)")
    tune.add_argument("--resample", type=finite_float, default=None,
                      help="pbt: the chance that a perturbed value is drawn anew from the space instead of "
                           "multiplied by 0.8 or 1.2 (default 0.25)")
    tune.add_argument("--search", default=None, choices=("random", "grid", "optuna"),
                      help="default random; optuna needs the optional extra: pip install 'vaegan-dist[optuna]'")
    tune.add_argument("--metric", default=None, help="what trials are compared on (default eval/fd)")
    tune.add_argument("--mode", default=None, choices=("min", "max"),
                      help="default: min for fd and losses, max for attr_agreement, precision, ...")
    tune.add_argument("--name", default="", help="the sweep's directory under train.storage_path "
                                                "(default sweep-<date>-<time>)")
    tune.add_argument("--resume", action="store_true",
                      help="continue the sweep --name as it was started: finished trials are kept, unfinished and "
                           "errored ones continue from their checkpoints; only train.storage_path, ray.address, "
                           "train.start_timeout_s and train.start_retries may be given")
    tune.add_argument("--preset", default=None, choices=sorted(PRESETS), help="base config (default: smoke)")
    tune.add_argument("--seed", type=int_range(0, 2**32 - 1), default=None,
                      help="seed of the random, grid or optuna search, and of PBT's choices (default 0)")
    tune.add_argument("overrides", nargs="*", metavar="key=value", help="base config overrides for every trial")
    tune.set_defaults(func=commands.tune)


def add_sample(commands_: Commands) -> None:
    sample = commands_.add_parser(
        "sample", parents=[checkpoint_option(), png_out_option("the grid"),
                           data_options("test", "the attribute combinations of a conditioned model come from"),
                           seed_option("the latent codes")],
        help="decode random latent codes into an image grid")
    sample.add_argument("--n", type=int_range(1, MAX_GRID), default=64, help=f"number of images (1..{MAX_GRID})")
    sample.add_argument("--set", action="extend", nargs="+", default=[], metavar="NAME=0|1",
                        help="attribute-conditioned models: generate faces with this attribute set (or unset); the "
                             "others follow real images of --split")
    sample.set_defaults(func=commands.sample)


def add_reconstruct(commands_: Commands) -> None:
    reconstruct = commands_.add_parser(
        "reconstruct", parents=[checkpoint_option(), png_out_option("the grid"),
                                data_options("valid", "whose first images are reconstructed")],
        help="encode and decode held-out images; originals and reconstructions in alternating rows")
    reconstruct.add_argument("--n", type=int_range(1, MAX_GRID), default=None,
                             help=f"number of held-out images (1..{MAX_GRID}, default 32)")
    reconstruct.add_argument("--image", action="extend", nargs="+", default=[], metavar="FILE",
                             help="reconstruct this jpg/png/webp photo instead of held-out images (repeatable; "
                                  "cropped like prepare folder, as the service's POST /reconstruct)")
    reconstruct.set_defaults(func=commands.reconstruct)


def add_edit(commands_: Commands) -> None:
    edit = commands_.add_parser(
        "edit", parents=[checkpoint_option(), png_out_option("the grid"), data_options("test", "whose images are "
                         "edited"), num_option(256, "images edited and scored", low=1), evaluator_option(),
                         json_option("the scores")],
        help="add or remove attributes (eyeglasses, smiling, ...) with attribute vectors: a grid and the share of "
             "images the evaluator says the edit changed")
    edit.add_argument("--attribute", action="extend", nargs="+", required=True, metavar="NAME",
                      help="an attribute of the data (repeat for several), e.g. Eyeglasses")
    edit.add_argument("--scale", action="extend", nargs="+", type=finite_float, metavar="S",
                      help="multiple of the vector added (repeatable; negative removes; default -1, 1, 2)")
    edit.add_argument("--image", action="extend", nargs="+", default=[], metavar="FILE",
                      help="edit this jpg/png/webp photo instead of held-out images (repeatable; cropped like "
                           "prepare folder)")
    edit.add_argument("--show", type=int_range(1, 64), default=8, help="images shown per attribute in the grid")
    edit.add_argument("--vector-images", type=int_range(2, 1_000_000), default=10_000,
                      help="training images encoded for the vectors (paper: 10000)")
    edit.set_defaults(func=commands.edit)


def add_evaluate(commands_: Commands) -> None:
    evaluate = commands_.add_parser(
        "evaluate", parents=[checkpoint_option(), data_options("test", "evaluated on"),
                             num_option(2000, "held-out images, and as many samples; fewer if the split is smaller"),
                             evaluator_option(), json_option("the metrics"),
                             seed_option("the samples drawn from p(z)")],
        help="every metric of a trained model (fd, fd_recon, attr_agreement, pixel_mse, feature_mse, sharpness_ratio, "
             "precision, recall, fid)")
    evaluate.add_argument("--inception-weights", default=None, metavar="PATH",
                          help="a local torchvision Inception v3 weights file: adds fid (never downloaded)")
    evaluate.add_argument("--workers", type=int_range(1, 64), default=1,
                          help="processes on this machine that share the evaluation (one GPU each where there are "
                               "GPUs; the CPU cores split between them otherwise); the same numbers, sooner for a "
                               "large --num")
    evaluate.add_argument("--batch", type=int_range(1, 4096), default=256,
                          help="images per batch (default 256); the samples' z are drawn batch by batch, so the same "
                               "--batch gives the same numbers with any --workers")
    evaluate.set_defaults(func=commands.evaluate)


def add_similarity(commands_: Commands) -> None:
    similarity = commands_.add_parser(
        "similarity", parents=[checkpoint_option("conditioned models, one row each", many=True),
                               data_options("test", "whose attribute combinations are generated"),
                               num_option(2000, "test images, one generated face each"), evaluator_option(),
                               json_option("the table"), seed_option("the z each face is generated from")],
        help="the paper's experiment: attribute-conditioned models generate faces from test images' attributes, and "
             "the evaluator scores how well they match (the paper's Table 1)")
    similarity.set_defaults(func=commands.similarity)


def add_pretraining(commands_: Commands) -> None:
    pretraining = commands_.add_parser(
        "pretraining", parents=[checkpoint_option("a vaegan, vae_disl or gan model"), data_options(),
                                json_option("the table"),
                                seed_option("the label subsets and the classifiers")],
        help="the paper's experiment: attribute classifiers on the discriminator's network (frozen, fine-tuned) "
             "against the same from scratch, with 1%%, 10%% and 100%% of the labels")
    pretraining.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0],
                             help="label fractions (default 0.01 0.1 1)")
    pretraining.add_argument("--steps", type=int_range(1, 1_000_000), default=1000,
                             help="optimiser steps per classifier")
    pretraining.add_argument("--train-images", type=int_range(1, 200_000), default=20_000,
                             help="training images the labels are drawn from")
    pretraining.set_defaults(func=commands.pretraining)


def add_evaluator(commands_: Commands) -> None:
    evaluator = commands_.add_parser("evaluator", help="the attribute classifier whose features the metrics use")
    actions = evaluator.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", parents=[seed_option("the classifier's initialisation and batches")],
                               help="train one on a data set's train split, early-stopped on valid, scored on test")
    train.add_argument("--data", required=True, help="shard directory or manifest with train, valid and test")
    train.add_argument("--out", default=None, help="file to write (default: the cache, where evaluate and training "
                                                   "look for it)")
    train.add_argument("--cache-dir", default="~/vaegan-dist/data", help="data.cache_dir (default %(default)s)")
    train.add_argument("--epochs", type=int_range(1, 1000), default=25, help="at most this many epochs")
    train.set_defaults(func=commands.evaluator_train)


def add_report(commands_: Commands) -> None:
    report = commands_.add_parser("report", help="one self-contained HTML page showing runs side by side: samples, "
                                                 "reconstructions, metrics, edits, similarity, pretraining")
    report.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run directories (at most 32)")
    report.add_argument("--out", required=True, help="HTML file to write (.html or .htm; replaced if it exists)")
    report.add_argument("--title", default="vaegan-dist report", help="the page's heading (default %(default)s)")
    report.set_defaults(func=commands.report)


def add_serve(commands_: Commands) -> None:
    serve = commands_.add_parser(
        "serve", parents=[checkpoint_option(), data_options()],
        help="a trained model as a Ray Serve application: sample, reconstruct, edit and interpolate over HTTP, and "
             "a face-editing page at /",
        description="Serve a checkpoint on Ray Serve (FastAPI ingress, a separate model deployment that batches "
                    "requests). The same application runs with Ray's tools: serve run vaegan_dist.serve.app:app "
                    "checkpoint=RUN.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                          "only; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int_range(1, 65535), default=8000, help="HTTP port (default 8000)")
    scaling = serve.add_mutually_exclusive_group()
    scaling.add_argument("--replicas", type=int_range(1, 64), default=1, help="model replicas (default 1)")
    scaling.add_argument("--autoscale", default=None, metavar="MIN-MAX",
                         help="let Serve scale the model replicas between MIN and MAX with the load")
    serve.add_argument("--vector-images", type=int_range(2, 1_000_000), default=10_000,
                       help="training images encoded for the attribute vectors (cached beside the checkpoint)")
    serve.add_argument("--no-batching", action="store_true", help="one network call per request (for comparison)")
    serve.add_argument("--address", default="", help="Ray cluster to serve on (default: start one here)")
    serve.add_argument("--name", type=app_name, default="vaegan-dist",
                       help="the Serve application's name (default %(default)s); stopping deletes this one only")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME", type=host_name,
                       help="a name clients may reach the service under, besides localhost and --host "
                            "(repeatable; * for any); other Host headers are refused")
    serve.add_argument("--write-config", default=None, metavar="YAML",
                       help="write a Serve config file for `serve deploy` on a cluster instead of serving")
    serve.set_defaults(func=commands.serve)


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
