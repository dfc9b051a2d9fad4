"""Time to quality: recipes trained one after the other on the same data, seed and machine, each as the main
job runs (`vaegan-dist train`, its Ray workers, DataLoader workers and evaluation counted in its minutes),
evaluated every --eval-every steps on the valid split.

Prints, per recipe, the wall minutes (and CPU-minutes: wall x the machine's cores) until fd <= 60 / 40 / 30
and fd_recon <= 30 / 20 were first measured, the metrics at the budget, and images/s; draws the curves
(metric against minutes, one line per recipe) into --out (default: under --root; the headline figure,
bench/figures/time_to_quality.png, only when named).

    python bench/time_to_quality.py --recipes preset paper ema adam --steps 400 --eval-every 50

Minutes run from the moment the command is started to the TensorBoard event of each evaluation: Ray's
start-up and the first evaluation are in them; the one-time data rendering and evaluator training are not
(run `vaegan-dist train` once with the same --preset and --extra before measuring, so that they are cached).
Every run gets a new directory under --root: a run that exists already is refused, never resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vaegan_dist.config import build_config

# Each recipe is overrides on top of the smoke preset (or --preset: with --preset faces64, which trains at 1e-3, the
# recipe lr1e-3 is the preset itself). "paper" undoes every recipe option the smoke preset
# turns on, so it is the smoke preset as it was before the recipe options (issue 17's starting point).
PAPER_SMOKE = ["optim.algorithm=rmsprop", "optim.ema_halflife_kimg=0", "objective.gan_start=0",
               "objective.adaptive_gamma=false", "objective.r1_gamma=0", "model.spectral_norm=false",
               "model.discriminator_norm=batch", "model.autoencoder_norm=batch", "model.dis_l_side=8",
               "objective.kl_weight=1", "objective.pixel_weight=0", "objective.gamma=0.01",
               "objective.equilibrium=true", "optim.lr_encoder=3e-4", "optim.lr_decoder=3e-4",
               "optim.lr_discriminator=3e-4", "train.workers=2", "train.cpus_per_worker=1", "data.batch_size=16"]
RECIPES: dict[str, list[str]] = {
    "preset": [],
    "paper": PAPER_SMOKE,
    "ema": [*PAPER_SMOKE, "optim.ema_halflife_kimg=2"],
    "adam": [*PAPER_SMOKE, "optim.algorithm=adam", "optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3",
             "optim.lr_discriminator=1e-3"],
    "adam_2e-4": [*PAPER_SMOKE, "optim.algorithm=adam", "optim.lr_encoder=2e-4", "optim.lr_decoder=2e-4",
                  "optim.lr_discriminator=2e-4"],
    "warmup": [*PAPER_SMOKE, "objective.gan_start=100"],
    "adaptive": [*PAPER_SMOKE, "objective.adaptive_gamma=true", "objective.equilibrium=false"],
    "adaptive_eq": [*PAPER_SMOKE, "objective.adaptive_gamma=true"],
    "r1": [*PAPER_SMOKE, "objective.r1_gamma=1", "objective.r1_every=4"],
    "sn": [*PAPER_SMOKE, "model.spectral_norm=true"],
    "one_worker": [*PAPER_SMOKE, "train.workers=1", "train.cpus_per_worker=2", "data.batch_size=32"],
    "pixel": [*PAPER_SMOKE, "objective.pixel_weight=1"],
    "ema_pixel": [*PAPER_SMOKE, "optim.ema_halflife_kimg=2", "objective.pixel_weight=1"],
    "ema5": [*PAPER_SMOKE, "optim.ema_halflife_kimg=5"],
    "ema_r1": [*PAPER_SMOKE, "optim.ema_halflife_kimg=2", "objective.r1_gamma=1", "objective.r1_every=4"],
    "ema_r1_pixel": [*PAPER_SMOKE, "optim.ema_halflife_kimg=2", "objective.r1_gamma=1", "objective.r1_every=4",
                     "objective.pixel_weight=1"],
    "ema_r1_pixel0.1": [*PAPER_SMOKE, "optim.ema_halflife_kimg=2", "objective.r1_gamma=1", "objective.r1_every=4",
                        "objective.pixel_weight=0.1"],
    "preset_pixel2": ["objective.pixel_weight=2"],
    "preset_nobn": ["model.discriminator_norm=none"],  # the smoke preset since issue 17's third session
    "preset_bn": ["model.discriminator_norm=batch"],  # the smoke preset before it
    # Aimed at fd_recon (issue 17's open goal), on top of the smoke preset:
    "preset_lr5e-4": ["optim.lr_encoder=5e-4", "optim.lr_decoder=5e-4", "optim.lr_discriminator=5e-4"],
    "preset_latent64": ["model.latent_dim=64"],
    "preset_gamma0.03": ["objective.gamma=0.03"],
    "preset_gamma0.1": ["objective.gamma=0.1"],
    "preset_one_worker": ["train.workers=1", "train.cpus_per_worker=2", "data.batch_size=32"],
    "preset_r1every16": ["objective.r1_every=16"],  # StyleGAN2's interval: R1's double backward 4x less often
    "preset_lr5e-4_ed": ["optim.lr_encoder=5e-4", "optim.lr_decoder=5e-4"],  # the discriminator stays at 3e-4
    "preset_gamma0.003": ["objective.gamma=0.003"],  # gamma 0.03 and 0.1 made reconstructions worse: the other way
    "preset_lr_enc1e-3": ["optim.lr_encoder=1e-3"],  # only the encoder faster, to follow the decoder
    # Fifth session: the learning rate annealed over the run (the released code's schedule), alone and with higher
    # starting rates, and a shorter weight average
    "preset_anneal": ["optim.schedule=power_anneal"],
    "preset_lr5e-4_anneal": ["optim.schedule=power_anneal", "optim.lr_encoder=5e-4", "optim.lr_decoder=5e-4",
                             "optim.lr_discriminator=5e-4"],
    "preset_lr1e-3_anneal": ["optim.schedule=power_anneal", "optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3",
                             "optim.lr_discriminator=1e-3"],
    "preset_ema1": ["optim.ema_halflife_kimg=1"],  # the same run as the preset's: the ramp-up (0.05 x images seen)
    # is the shorter half-life until 40,000 images (~1,250 steps); the ramp-up is what sets the average here
    "preset_rampup0.1": ["optim.ema_rampup=0.1"],
    "preset_rampup0.2": ["optim.ema_rampup=0.2"],
    "preset_rms0.99": ["optim.rms_decay=0.99"],
    "preset_rampup0.025": ["optim.ema_rampup=0.025"],
    "preset_rampup0.0125": ["optim.ema_rampup=0.0125"],
    "preset_no_ema": ["optim.ema_halflife_kimg=0"],
    # Issue 25: the step in float32 and under bf16 autocast (train.precision; the preset's "auto" picks bf16 only
    # where the CPU computes it natively)
    "preset_fp32": ["train.precision=fp32"],
    "preset_bf16": ["train.precision=bf16"],
    "lr_1e-3": [*PAPER_SMOKE, "optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3", "optim.lr_discriminator=1e-3"],
    # Issue 26: why 64 px learns less per image. Each changes one thing of the smoke recipe; run them with
    # --extra data.image_size=64 (and 32, for the same recipe at 32 px). "vae" calibrates the 64 px evaluator.
    "vae": ["model.kind=vae"],
    "vae_disl": ["model.kind=vae_disl"],  # no GAN gradient to the decoder: is the GAN term what hurts at 64 px?
    "no_equilibrium": ["objective.equilibrium=false"],
    "gamma0.04": ["objective.gamma=0.04"],  # L_llike's pixel sum is 4x larger at 64 px: this is the other way
    "gamma0.0025": ["objective.gamma=0.0025"],  # the reconstruction's weight per pixel as at 32 px
    "r1_4": ["objective.r1_gamma=4"],  # StyleGAN2 scales gamma with the resolution squared
    "dis_bn": ["model.discriminator_norm=batch"],
    "pixel4": ["objective.pixel_weight=4"],
    "no_ema": ["optim.ema_halflife_kimg=0"],
    "lr1e-4": ["optim.lr_encoder=1e-4", "optim.lr_decoder=1e-4", "optim.lr_discriminator=1e-4"],
    "lr1e-3": ["optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3", "optim.lr_discriminator=1e-3"],
    "lr2e-3": ["optim.lr_encoder=2e-3", "optim.lr_decoder=2e-3", "optim.lr_discriminator=2e-3"],
    # the two 64 px levers that each reached fd_recon 43-44 at step 1000, together (33.2 at step 1000, one seed)
    "lr1e-3_fc1024": ["optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3", "optim.lr_discriminator=1e-3",
                      "model.encoder_fc=1024"],
    "latent128": ["model.latent_dim=128"],
    # a longer weight average early: the ramp-up caps the half-life at ema_rampup x the images seen
    "ema_ramp0.2": ["optim.ema_halflife_kimg=10", "optim.ema_rampup=0.2"],
    "ema_ramp0.5": ["optim.ema_halflife_kimg=10", "optim.ema_rampup=0.5"],
    "width1": ["model.width=1.0"],
    "dis_lr1e-4": ["optim.lr_discriminator=1e-4"],  # a slower discriminator: a shorter noisy GAN phase at 64 px?
    "ae_nobn": ["model.autoencoder_norm=none"],  # no batch norm in the encoder and decoder (64 px)
    # Dis_l from the 16x16 conv at 64 px: 4 image pixels per feature, as the paper's 8x8 Dis_l is at 32 px
    # the KL's weight in the encoder's loss: a 32-dim code carries no Eyeglasses or Smiling at weight 1
    "lr1e-3_kl0.1": ["optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3", "optim.lr_discriminator=1e-3",
                     "objective.kl_weight=0.1"],
    "lr1e-3_disl16": ["optim.lr_encoder=1e-3", "optim.lr_decoder=1e-3", "optim.lr_discriminator=1e-3",
                      "model.dis_l_side=16"],
    "enc_fc1024": ["model.encoder_fc=1024"],  # the released code's encoder FC (the smoke preset's is 256)
}
FD_TARGETS = (60.0, 40.0, 30.0)
RECON_TARGETS = (30.0, 20.0)
SHOWN = ("fd", "kid", "fd_recon", "attr_agreement", "sharpness_ratio", "precision", "recall")


def read_curve(run_dir: Path, started: float | None = None) -> tuple[EventAccumulator, dict]:
    """A run's evaluations from its TensorBoard events: {metric: [(minutes since ``started``, step, value)]};
    ``started`` defaults to the run's first logged scalar (for runs this script did not start)."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    tags = events.Tags()["scalars"]
    if started is None:
        started = min((e.wall_time for tag in tags for e in events.Scalars(tag)), default=0.0)
    curve = {metric: [((e.wall_time - started) / 60, e.step, e.value) for e in events.Scalars(f"eval/{metric}")]
             for metric in SHOWN if f"eval/{metric}" in tags}
    return events, curve


def run_recipe(name: str, overrides: list[str], args) -> dict:
    """Train one recipe as a user would and read its evaluation curve back from TensorBoard."""
    run_name = f"{name}-s{args.seed}"
    command = [sys.executable, "-m", "vaegan_dist.cli.main", "train", "--preset", args.preset,
               f"train.name={run_name}", f"train.storage_path={args.root}", f"train.steps={args.steps}",
               f"train.eval_every={args.eval_every}", f"train.seed={args.seed}", "train.checkpoint_every=100000",
               *overrides, *args.extra]
    log = args.root / f"{run_name}.log"
    if (args.root / run_name).exists():  # a rerun would resume it and time old events from a new start
        raise SystemExit(f"{args.root / run_name} exists: give a new --root for a new measurement")
    started = time.time()
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.time() - started
    if code != 0:
        raise SystemExit(f"{name}: training failed (exit {code}); see {log}")
    events, curve = read_curve(args.root / run_name, started)
    ips = [e.value for e in events.Scalars("perf/images_per_s")] if "perf/images_per_s" in events.Tags()["scalars"] \
        else []
    workers = max(1, build_config(args.preset, [*overrides, *args.extra]).train.worker_range()[0])  # 0: in-process
    return {"name": name, "curve": curve, "wall_min": wall / 60,
            "images_per_s": workers * sum(ips[1:]) / max(1, len(ips) - 1) if ips else None}


def first_reached(points: list[tuple[float, int, float]], target: float) -> float | None:
    return next((minutes for minutes, _, value in points if value <= target), None)


def at_budget(points: list[tuple[float, int, float]], budget: float) -> float | None:
    within = [value for minutes, _, value in points if minutes <= budget]
    return within[-1] if within else None


def table(results: list[dict], budget: float, cores: int) -> str:
    def fmt(v, spec=".1f"):
        return "-" if v is None else format(v, spec)

    head = (["recipe"] + [f"min to fd<={t:g}" for t in FD_TARGETS] + [f"min to fd_recon<={t:g}" for t in RECON_TARGETS]
            + [f"{m} @{budget:g} min" for m in SHOWN] + ["img/s", "run min"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        c = r["curve"]
        cells = [r["name"]]
        cells += [fmt(first_reached(c.get("fd", []), t)) for t in FD_TARGETS]
        cells += [fmt(first_reached(c.get("fd_recon", []), t)) for t in RECON_TARGETS]
        cells += [fmt(at_budget(c.get(m, []), budget), ".4g") for m in SHOWN]
        cells += [fmt(r["images_per_s"]), fmt(r["wall_min"], ".2f")]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(f"\nminutes are wall minutes on this machine's {cores} cores (CPU-minutes = {cores} x minutes); "
                "'-' = not reached within the run")
    return "\n".join(rows)


def draw(results: list[dict], out: Path, budget: float, by_steps: bool = False, title: str = "") -> None:
    """Metric against wall minutes, or against steps (``by_steps``: runs whose minutes do not compare, such as
    emulated bf16 beside float32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = 1 if by_steps else 0
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, targets in zip(axes, ("fd", "fd_recon", "kid"), (FD_TARGETS, RECON_TARGETS, ())):
        for i, r in enumerate(results):
            points = r["curve"].get(metric, [])
            if points:  # matplotlib's 10 colours, then again dashed: a figure of many runs stays readable
                ax.plot([p[x] for p in points], [p[2] for p in points], marker=".", label=r["name"],
                        color=f"C{i % 10}", ls=("-", "--", ":")[i // 10 % 3])
        for t in targets:
            ax.axhline(t, color="grey", lw=0.6, ls="--")
        if not by_steps:
            ax.axvline(budget, color="red", lw=0.6, ls=":")
        ax.set_xlabel("steps" if by_steps else "wall minutes on 2 CPU cores (from the command's start)")
        ax.set_ylabel(f"{metric} (valid, lower is better)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "time to quality: vaegan-dist train --preset smoke + recipe")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["paper", "preset"], choices=sorted(RECIPES))
    parser.add_argument("--preset", default="smoke", help="the preset every recipe's overrides apply to (default "
                        "smoke; the recipes were written against it)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=3.0, help="minutes at which the metrics are shown")
    parser.add_argument("--root", type=Path, default=Path("/tmp/time-to-quality"))
    # Not the headline figure by default: a trial run of a recipe overwrote bench/figures/time_to_quality.png
    # (issue 28's note); regenerating that one takes --out bench/figures/time_to_quality.png.
    parser.add_argument("--out", type=Path, default=None,
                        help="the figure of the curves (default: time_to_quality.png under --root)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every recipe")
    parser.add_argument("--replot", nargs="+", type=Path, default=None, metavar="RESULTS_JSON",
                        help="train nothing: draw the curves of earlier runs (their --root's results.json, or a "
                        "run directory), "
                        "by step unless --by-minutes")
    parser.add_argument("--by-minutes", action="store_true", help="--replot against wall minutes (same machine)")
    parser.add_argument("--title", default="", help="the figure's title (default: the preset and --extra)")
    args = parser.parse_args()
    args.out = args.out or args.root / "time_to_quality.png"
    title = args.title or " ".join(["time to quality: vaegan-dist train --preset", args.preset, "+ recipe",
                                    *args.extra])
    if args.replot:
        results = []
        for path in args.replot:
            if path.is_dir():  # a run directory (any `vaegan-dist train` run): its curve from its events
                results.append({"name": path.name, "curve": read_curve(path)[1], "wall_min": None})
                continue
            for r in json.loads(path.read_text()):
                results.append({**r, "name": f"{r['name']} ({path.parent.name})"})
        draw(results, args.out, args.budget, by_steps=not args.by_minutes,
             title=args.title or "time to quality (earlier runs)")
        print(f"curves: {args.out}")
        return
    args.root = args.root.resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.recipes:
        results.append(run_recipe(name, RECIPES[name], args))
        print(f"{name}: done in {results[-1]['wall_min']:.2f} min", flush=True)
        (args.root / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results, args.budget, os.cpu_count() or 1))
    draw(results, args.out, args.budget, title=title)
    print(f"curves: {args.out}")


if __name__ == "__main__":
    main()
