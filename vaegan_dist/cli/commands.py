"""The CLI's commands: thin calls into the library, and the messages a user reads."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from vaegan_dist import errors
from vaegan_dist.cli.arguments import MAX_GRID
from vaegan_dist.config import build_config, config_to_dict

USER_ERRORS = (*errors.USER_ERRORS, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def prepare_synthetic(args: argparse.Namespace) -> int:
    from vaegan_dist.data.synthetic import prepare_synthetic as write

    manifest = write(Path(args.out), num=args.num, size=args.size, seed=args.seed, workers=args.workers,
                     shard_samples=args.shard_samples)
    counts = ", ".join(f"{split} {manifest.samples(split)}" for split in manifest.splits)
    print(f"wrote {Path(args.out).resolve()}: {counts} images at {args.size}px")
    return 0


def prepare_celeba(args: argparse.Namespace) -> int:
    from vaegan_dist.data.celeba import prepare_celeba as convert

    _, summary = convert(Path(args.root), Path(args.out), size=args.size, crop=args.crop,
                         shard_samples=args.shard_samples, workers=args.workers, encoding=args.encoding)
    print(summary)
    return 0


def prepare_folder(args: argparse.Namespace) -> int:
    from vaegan_dist.data.folder import prepare_folder as convert

    _, summary = convert(Path(args.root), Path(args.out), size=args.size, attributes=args.attributes,
                         shard_samples=args.shard_samples, workers=args.workers, encoding=args.encoding)
    print(summary)
    return 0


def train(args: argparse.Namespace) -> int:
    cfg = build_config(args.preset, args.overrides)
    if args.show_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    from vaegan_dist.train.launcher import launch

    run_dir = launch(cfg)
    print(f"\n{final_metrics(run_dir)}finished. run directory: {run_dir}\n"
          f"  TensorBoard:  tensorboard --logdir {run_dir / 'tensorboard'}   (then open http://localhost:6006)\n"
          f"  sample grids: {run_dir / 'samples'}\n"
          f"  new samples:  vaegan-dist sample --checkpoint {run_dir} --out samples.png\n"
          f"  all metrics:  vaegan-dist evaluate --checkpoint {run_dir}\n"
          f"  resume/extend: vaegan-dist train --preset {cfg.preset} train.name={run_dir.name} "
          f"train.steps=<more> ...")
    return 0


def tune(args: argparse.Namespace) -> int:
    from vaegan_dist.config import ConfigError
    from vaegan_tune.pbt import DEFAULT_QUANTILE, DEFAULT_RESAMPLE
    from vaegan_tune.space import load_space_text, ready_spaces
    from vaegan_tune.sweep import SweepSettings, run_sweep, saved_settings

    options = {"--space": args.space, "--trials": args.trials, "--scheduler": args.scheduler, "--search": args.search,
               "--metric": args.metric, "--mode": args.mode, "--preset": args.preset, "--seed": args.seed,
               "--perturb-every": args.perturb_every, "--quantile": args.quantile, "--resample": args.resample}
    if args.resume:
        if not args.name:
            raise ConfigError("--resume needs --name: the sweep to continue")
        given = [option for option, value in options.items() if value is not None]
        if given:
            raise ConfigError(f"--resume continues sweep {args.name} as it was started: leave out {', '.join(given)}")
        settings = saved_settings(args.name, tuple(args.overrides))
    else:
        given = [o for o, v in (("--perturb-every", args.perturb_every), ("--quantile", args.quantile),
                                ("--resample", args.resample)) if v is not None]
        if given and args.scheduler != "pbt":
            raise ConfigError(f"{given[0]} is a setting of --scheduler pbt (got --scheduler "
                              f"{args.scheduler or 'asha'})")
        if args.space is None:
            raise ConfigError(f"--space is required: a search space file, or {' | '.join(ready_spaces())}")
        text, file = load_space_text(args.space)
        settings = SweepSettings(space=text, space_file=file, preset=args.preset or "smoke",
                                 overrides=tuple(args.overrides), trials=args.trials,
                                 scheduler=args.scheduler or "asha", search=args.search or "random",
                                 metric=args.metric or "eval/fd", mode=args.mode or "", name=args.name,
                                 seed=args.seed or 0, perturb_every=args.perturb_every or 0,
                                 quantile=DEFAULT_QUANTILE if args.quantile is None else args.quantile,
                                 resample=DEFAULT_RESAMPLE if args.resample is None else args.resample)
    run_sweep(settings, resume=args.resume)
    return 0


def final_metrics(run_dir: Path) -> str:
    """The newest checkpoint's evaluation, as the run's closing lines ("" when it has none)."""
    from vaegan_dist.model.store import saved_evaluation

    try:
        step, shown = saved_evaluation(run_dir)
    except (FileNotFoundError, errors.CheckpointError):
        return ""
    if not shown:
        return ""
    from vaegan_dist.evaluate import better_note

    ways: dict[str, list[str]] = {}  # "lower is better" -> [fd, kid, ...], in the order shown
    for name in shown:
        ways.setdefault(better_note(name), []).append(name)
    return (f"final evaluation at step {step}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
            + "\n  (" + "; ".join(f"{way}: {', '.join(names)}" for way, names in ways.items()) + ")\n")


def _write_grid(images, out: Path) -> None:
    from vaegan_dist.data.codec import write_grid

    write_grid(images, out)
    print(f"wrote {out.resolve()}")


def sample(args: argparse.Namespace) -> int:
    import torch

    from vaegan_dist.evaluate.editing import grid_path_check
    from vaegan_dist.model import load_model

    out = grid_path_check(args.out)
    model, cfg, step = load_model(args.checkpoint)
    y = None
    if model.conditioned:
        from vaegan_dist.data.sources import open_source
        from vaegan_dist.data.stream import first_images
        from vaegan_dist.evaluate.similarity import attributes_to_order, parse_settings

        settings = parse_settings(args.set, model.attributes)
        from vaegan_dist.evaluate.run import data_to_use

        data = data_to_use(cfg, args.data, " (the attribute combinations come from its --split)")
        source = open_source(data, args.split)
        _, labels = first_images(source, args.split, args.n)
        y = attributes_to_order(model.attributes, labels, source.attributes, args.n, settings)
    elif args.set:
        raise errors.ConfigError("--set: this model is not conditioned on attributes (train with "
                                 "model.condition=attributes); edit an unconditioned model with `vaegan-dist edit`")
    _write_grid(model.sample(args.n, generator=torch.Generator().manual_seed(args.seed), y=y), out)
    return 0


def reconstruct(args: argparse.Namespace) -> int:
    from vaegan_dist.data.codec import interleave_rows, to_unit_range
    from vaegan_dist.data.sources import open_source
    from vaegan_dist.data.stream import check_image_size, first_images
    from vaegan_dist.evaluate.editing import grid_path_check
    from vaegan_dist.evaluate.run import data_to_use
    from vaegan_dist.model import load_model

    out = grid_path_check(args.out)
    model, cfg, _ = load_model(args.checkpoint)
    if not model.can_reconstruct:
        raise errors.CheckpointError(f"{args.checkpoint}: a {model.kind!r} model has no encoder, so it cannot "
                                     "reconstruct; use `vaegan-dist sample`")
    if args.image:
        if args.n is not None:
            raise errors.ConfigError("--n: counts held-out images; with --image every photo given is reconstructed")
        if model.conditioned:
            raise errors.ConfigError(f"--image: {args.checkpoint} is conditioned on attributes, which a photo does "
                                     "not come with; reconstruct held-out images without --image")
        if len(args.image) > MAX_GRID:
            raise errors.ConfigError(f"--image: {len(args.image)} photos; at most {MAX_GRID}")
        from vaegan_dist.data.user_images import load_user_images

        x = to_unit_range(load_user_images(args.image, cfg.data.image_size), next(model.parameters()).device)
        _write_grid(interleave_rows(x, model.reconstruct(x)), out)
        return 0
    source = open_source(data_to_use(cfg, args.data), args.split)
    check_image_size(source, cfg.data.image_size)
    images, attrs = first_images(source, args.split, args.n or 32)
    x = to_unit_range(images, next(model.parameters()).device)
    y = None
    if model.conditioned:  # a conditioned model reconstructs each image with its own attributes
        from vaegan_dist.evaluate.model_metrics import reorder_attributes

        y = reorder_attributes(attrs, source.attributes, model.attributes, source.where)
    recon = model.reconstruct(x, y)
    _write_grid(interleave_rows(x, recon), out)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from vaegan_dist.evaluate.results import METRICS_FORMAT, json_text
    from vaegan_dist.evaluate.run import (
        check_json_target,
        default_device,
        evaluate_checkpoint,
        metrics_table,
        write_json,
    )

    if args.json:
        check_json_target(args.json)
    result = evaluate_checkpoint(args.checkpoint, data=args.data, split=args.split, num=args.num,
                                 evaluator=args.evaluator, inception_weights=args.inception_weights, seed=args.seed,
                                 device=default_device(), workers=args.workers,
                                 batch=args.batch)
    print(metrics_table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json).resolve()}")
    _record(args.checkpoint, "metrics", json_text({"format": METRICS_FORMAT, **result}))
    return 0


def _record(checkpoint: str, name: str, text: str) -> None:
    """Keep a result in the run directory too, for ``vaegan-dist report``."""
    from vaegan_dist.evaluate.results import record

    path = record(checkpoint, name, text)
    if path is not None:
        print(f"recorded in {path} (for vaegan-dist report)")


def _write_json_text(text: str, out: str) -> None:
    from vaegan_dist.atomic import atomic_write_text

    path = Path(out).expanduser()
    atomic_write_text(path, text)
    print(f"wrote {path.resolve()}")


def similarity(args: argparse.Namespace) -> int:
    from vaegan_dist.evaluate.results import json_text
    from vaegan_dist.evaluate.run import check_json_target, default_device, open_trained
    from vaegan_dist.evaluate.similarity import similarity_table, similarity_text
    from vaegan_dist.model.store import resolve_checkpoint

    if args.json:
        check_json_target(args.json)
    resolved = [resolve_checkpoint(c).resolve() for c in args.checkpoint]
    twice = next((c for c, r in zip(args.checkpoint, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise errors.ConfigError(f"--checkpoint {twice}: the same checkpoint is named twice")
    device = default_device()
    first = open_trained(args.checkpoint[0], data=args.data, splits=(args.split,), evaluator=args.evaluator,
                         device=device)
    data = args.data or first.cfg.data.source
    others = [open_trained(c, data=data, splits=(args.split,), evaluator=None, device=device)
              for c in args.checkpoint[1:]]
    table = similarity_table([first, *others], split=args.split, num=args.num, seed=args.seed)
    print(similarity_text(table))
    text = json_text(table.to_json())
    if args.json:
        _write_json_text(text, args.json)
    for checkpoint in args.checkpoint:
        _record(checkpoint, "similarity", text)
    return 0


def pretraining(args: argparse.Namespace) -> int:
    from vaegan_dist.evaluate.pretraining import (
        Settings,
        check_fractions,
        check_pretrainable,
        pretraining_table,
        pretraining_text,
    )
    from vaegan_dist.evaluate.results import json_text
    from vaegan_dist.evaluate.run import check_json_target, default_device, open_trained

    if args.json:
        check_json_target(args.json)
    check_fractions(args.fractions)
    trained = open_trained(args.checkpoint, data=args.data, splits=("train", "valid", "test"), evaluator=None,
                           device=default_device(), check=check_pretrainable)
    print(f"training {3 * len(args.fractions)} attribute classifiers ({args.steps} steps each) ...")
    table = pretraining_table(trained, fractions=args.fractions, train_images=args.train_images,
                              settings=Settings(steps=args.steps, seed=args.seed))
    print(pretraining_text(table))
    text = json_text(table.to_json())
    if args.json:
        _write_json_text(text, args.json)
    _record(args.checkpoint, "pretraining", text)
    return 0


def edit(args: argparse.Namespace) -> int:
    from vaegan_dist.data.codec import write_grid
    from vaegan_dist.evaluate.editing import (
        DEFAULT_SCALES,
        check_editable,
        edit_table,
        grid_path_check,
        run_edit,
    )
    from vaegan_dist.evaluate.results import json_text, record
    from vaegan_dist.evaluate.run import check_json_target, default_device, open_trained

    out = grid_path_check(args.out)
    if args.json:
        if check_json_target(args.json).resolve() == out.resolve():
            raise errors.ConfigError(f"--json {args.json}: the same file as --out; the scores would replace the grid")
    splits = ("train",) if args.image else ("train", args.split)
    trained = open_trained(args.checkpoint, data=args.data, splits=splits, evaluator=args.evaluator,
                           device=default_device(), require_evaluator=False, check=check_editable)
    result = run_edit(trained, args.attribute, args.scale or DEFAULT_SCALES, split=args.split, images=args.image,
                      num=args.num, show=args.show, vector_images=args.vector_images)
    write_grid(result.grid, out, nrow=result.columns)
    print(edit_table(result.record))
    print(f"wrote {out.resolve()} (rows: images; columns: original, reconstruction, "
          + ", ".join(f"{s:+g}" for s in result.record.scales) + ")")
    text = json_text(result.record.to_json())
    if args.json:
        _write_json_text(text, args.json)
    if record(trained.checkpoint, "edit_grid", out.read_bytes()):
        _record(str(trained.checkpoint), "edit", text)
    return 0


def evaluator_train(args: argparse.Namespace) -> int:
    from vaegan_dist.atomic import check_output_file
    from vaegan_dist.data.sources import open_source
    from vaegan_dist.evaluate.evaluator import cached_evaluator_path
    from vaegan_dist.evaluate.run import default_device
    from vaegan_dist.evaluate.train_evaluator import accuracy_table, train_evaluator

    if args.out:
        check_output_file(args.out, "--out", (".pt",), "an evaluator file (its report is written beside it as .json)")
    source = open_source(args.data, "train")
    out = Path(args.out).expanduser() if args.out else cached_evaluator_path(args.cache_dir, source.fingerprint)
    _check_not_foreign_report(out.with_suffix(".json"))
    evaluator = train_evaluator(args.data, seed=args.seed, max_epochs=args.epochs, device=default_device())
    print(accuracy_table(evaluator))
    evaluator.save(out)
    print(f"wrote {out.resolve()} and {out.with_suffix('.json').name} beside it")
    return 0


def _check_not_foreign_report(report: Path) -> None:
    """The evaluator's report is written beside it: never over a JSON file that is not an earlier report."""
    import json

    from vaegan_dist.evaluate.evaluator import FORMAT

    if not report.exists():
        return
    try:
        ours = json.loads(report.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise errors.ConfigError(f"--out: {report} exists and is not an evaluator report; choose another --out")


def report(args: argparse.Namespace) -> int:
    from vaegan_dist.evaluate.report import write_report

    print(f"wrote {write_report(args.runs, args.out, title=args.title).resolve()}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from vaegan_dist.atomic import check_output_file
    from vaegan_dist.serve.run import serve_checkpoint, settings_for, write_serve_config

    out = check_output_file(args.write_config, "--write-config", (".yaml", ".yml"), "a Serve config file") \
        if args.write_config else None
    settings = settings_for(args.checkpoint, args.data, args.vector_images, args.replicas, args.autoscale,
                            batching=not args.no_batching, host=args.host, allow_hosts=tuple(args.allow_host),
                            open_data=out is None)
    if out is not None:
        write_serve_config(settings, out, host=args.host, port=args.port, name=args.name)
        print(f"wrote {out.resolve()} (deploy it with: serve deploy {args.write_config})")
        return 0
    serve_checkpoint(settings, host=args.host, port=args.port, address=args.address, name=args.name)
    return 0
