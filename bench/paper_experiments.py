"""The paper's experiments (sections 4.1.1, 4.2, 4.3) on this machine, on the built-in faces:

1. attribute vectors: an unconditioned VAE/GAN, `vaegan-dist edit` adding and removing Eyeglasses and
   Smiling on test faces, scored by the evaluator;
2. attribute similarity: conditioned VAE, GAN and VAE/GAN, `vaegan-dist similarity` (one table);
3. unsupervised pretraining: `vaegan-dist pretraining` on the VAE/GAN's discriminator;
4. `vaegan-dist report` over the runs.

    python bench/paper_experiments.py                          # ~75 minutes on 2 CPU cores
    python bench/paper_experiments.py --edit-steps 2000 --cond-steps 1000 --root /tmp/quick
    python bench/paper_experiments.py --only similarity --preset faces64 --cond-steps 1500  # 64 px, 8,000 faces

Every step is the CLI a user runs, printed before it runs. Runs live under --root and a rerun reuses
finished ones (training resumes or says it is done), so the experiments can be repeated on the same models.
The training runs use --preset (smoke: the recipe that bench/time_to_quality.py selected; faces64: the same at
64 px, as issue 26 measured it) plus --extra, in one process with batch 32.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COMMON = ["data.batch_size=32", "train.workers=0", "train.eval_every=0",
          "train.image_every=1000", "train.log_every=100"]
EXPERIMENTS = ("edit", "similarity", "pretraining")


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="where the runs live (default ~/vaegan-dist/experiments, with -faces64 "
                                       "for that preset: a run name does not say its preset)")
    parser.add_argument("--preset", default="smoke", choices=("smoke", "faces64"), help="the training recipe")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--edit-steps", type=int, default=5000, help="steps of the unconditioned VAE/GAN")
    parser.add_argument("--cond-steps", type=int, default=2000, help="steps of each conditioned model")
    parser.add_argument("--samples", type=int, help="built-in faces rendered (80%% train; default 20000 for smoke, "
                                                     "the preset's 8000 for faces64)")
    parser.add_argument("--scales", nargs="+", default=["-2", "-1", "1", "2", "3"])
    parser.add_argument("--num", default="1000", help="test faces edited and scored")
    parser.add_argument("--pretraining-steps", default="1000")
    parser.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for every training run")
    args = parser.parse_args()
    default_root = "~/vaegan-dist/experiments" + ("" if args.preset == "smoke" else f"-{args.preset}")
    root = Path(args.root or default_root).expanduser()
    samples = args.samples or (20000 if args.preset == "smoke" else None)
    root.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "vaegan_dist.cli.main"]
    common = ["--preset", args.preset, *COMMON, *([f"data.synthetic_samples={samples}"] if samples else []),
              f"train.storage_path={root}", *args.extra]

    runs: list[Path] = []
    vaegan = root / f"vaegan-{args.edit_steps}"
    if {"edit", "pretraining"} & set(args.only):
        run([*cli, "train", *common, "model.kind=vaegan", f"train.steps={args.edit_steps}",
             f"train.checkpoint_every={max(1, args.edit_steps // 2)}", f"train.name={vaegan.name}"])
        run([*cli, "evaluate", "--checkpoint", str(vaegan)])
        runs.append(vaegan)
    if "edit" in args.only:
        run([*cli, "edit", "--checkpoint", str(vaegan), "--attribute", "Eyeglasses", "Smiling", "--scale",
             *args.scales, "--num", args.num, "--out", str(root / "edit.png"), "--json", str(root / "edit.json")])
    if "pretraining" in args.only:
        run([*cli, "pretraining", "--checkpoint", str(vaegan), "--steps", args.pretraining_steps,
             "--json", str(root / "pretraining.json")])
    if "similarity" in args.only:
        conditioned = [root / f"cond-{kind}-{args.cond_steps}" for kind in ("vae", "gan", "vaegan")]
        for run_dir in conditioned:
            kind = run_dir.name.split("-")[1]
            run([*cli, "train", *common, f"model.kind={kind}", "model.condition=attributes",
                 f"train.steps={args.cond_steps}", f"train.checkpoint_every={args.cond_steps}",
                 f"train.name={run_dir.name}"])
        run([*cli, "similarity", "--checkpoint", *map(str, conditioned), "--json",
             str(root / "similarity.json")])
        for run_dir in conditioned:
            run([*cli, "evaluate", "--checkpoint", str(run_dir)])
        runs.extend(conditioned)
    run([*cli, "report", "--runs", *map(str, runs), "--out", str(root / "report.html"),
         "--title", "The paper's experiments on the built-in faces"])
    summary = {name: json.loads((root / f"{name}.json").read_text()) for name in args.only}
    print(json.dumps({k: v.get("rows", v.get("results")) for k, v in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
