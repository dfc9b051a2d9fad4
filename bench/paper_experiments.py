"""The paper's experiments (sections 4.1.1, 4.2, 4.3) on this machine, on the built-in faces at 32 px:

1. attribute vectors: an unconditioned VAE/GAN, `vaegan-dist edit` adding and removing Eyeglasses and
   Smiling on test faces, scored by the evaluator;
2. attribute similarity: conditioned VAE, GAN and VAE/GAN, `vaegan-dist evaluate similarity` (one table);
3. unsupervised pretraining: `vaegan-dist evaluate pretraining` on the VAE/GAN's discriminator;
4. `vaegan-dist report` over all four runs.

    python bench/paper_experiments.py                          # ~75 minutes on 2 CPU cores
    python bench/paper_experiments.py --edit-steps 2000 --cond-steps 1000 --root /tmp/quick

Every step is the CLI a user runs, printed before it runs. Runs live under --root and a rerun reuses
finished ones (training resumes or says it is done), so the experiments can be repeated on the same models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COMMON = ["--preset", "smoke", "data.synthetic_samples=20000", "data.batch_size=32", "train.workers=0",
          "train.eval_every=0", "train.image_every=1000", "train.log_every=100"]


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="~/vaegan-dist/experiments")
    parser.add_argument("--edit-steps", type=int, default=5000, help="steps of the unconditioned VAE/GAN")
    parser.add_argument("--cond-steps", type=int, default=2000, help="steps of each conditioned model")
    parser.add_argument("--scales", nargs="+", default=["-2", "-1", "1", "2", "3"])
    parser.add_argument("--pretraining-steps", default="1000")
    args = parser.parse_args()
    root = Path(args.root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "vaegan_dist.cli.main"]
    storage = f"train.storage_path={root}"

    vaegan = root / f"vaegan-{args.edit_steps}"
    run([*cli, "train", *COMMON, storage, "model.kind=vaegan", f"train.steps={args.edit_steps}",
         f"train.checkpoint_every={max(1, args.edit_steps // 2)}", f"train.name={vaegan.name}"])
    conditioned = []
    for kind in ("vae", "gan", "vaegan"):
        name = f"cond-{kind}-{args.cond_steps}"
        run([*cli, "train", *COMMON, storage, f"model.kind={kind}", "model.condition=attributes",
             f"train.steps={args.cond_steps}", f"train.checkpoint_every={args.cond_steps}", f"train.name={name}"])
        conditioned.append(root / name)

    run([*cli, "evaluate", "--checkpoint", str(vaegan)])
    run([*cli, "edit", "--checkpoint", str(vaegan), "--attribute", "Eyeglasses", "Smiling", "--scale", *args.scales,
         "--num", "1000", "--out", str(root / "edit.png"), "--json", str(root / "edit.json")])
    run([*cli, "evaluate", "similarity", "--checkpoint", *map(str, conditioned), "--json",
         str(root / "similarity.json")])
    run([*cli, "evaluate", "pretraining", "--checkpoint", str(vaegan), "--steps", args.pretraining_steps,
         "--json", str(root / "pretraining.json")])
    for run_dir in conditioned:
        run([*cli, "evaluate", "--checkpoint", str(run_dir)])
    run([*cli, "report", "--runs", str(vaegan), *map(str, conditioned), "--out", str(root / "report.html"),
         "--title", "The paper's experiments on the built-in faces"])
    summary = {name: json.loads((root / f"{name}.json").read_text()) for name in ("edit", "similarity", "pretraining")}
    print(json.dumps({k: v.get("rows", v.get("results")) for k, v in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
