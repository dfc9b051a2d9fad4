"""The paper's comparison on this machine: VAE, VAE_Dis_l, VAE/GAN and GAN with the same networks, trained
for the same number of steps on the built-in faces, then every metric of each on the test split.

    python bench/paper_comparison.py --steps 3000 --seeds 0            # ~8 minutes per run on 2 CPU cores
    python bench/paper_comparison.py --steps 3000 --seeds 0 1 --preset smoke --extra objective.gamma=1e-6

Each run is `vaegan-dist train --preset PRESET model.kind=KIND train.steps=STEPS train.seed=SEED ...` in
its own run directory under --root, followed by `vaegan-dist evaluate --checkpoint RUN --json ...`; a rerun
with the same --root resumes or reuses finished runs. Prints a Markdown table (mean over seeds, and the
seeds' spread when there are several) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("vae", "vae_disl", "vaegan", "gan")
COLUMNS = ("fd", "fd_recon", "attr_agreement", "pixel_mse", "feature_mse", "sharpness_ratio", "precision", "recall")


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--root", default="~/vaegan-dist/paper-comparison")
    parser.add_argument("--workers", default="0", help="train.workers (0: in this process, all cores to one run)")
    parser.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for every run")
    args = parser.parse_args()
    root = Path(args.root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "vaegan_dist.cli.main"]
    results: dict[str, list[dict]] = {k: [] for k in args.kinds}
    minutes: dict[str, list[float]] = {k: [] for k in args.kinds}
    for seed in args.seeds:
        for kind in args.kinds:
            name = f"{kind}-seed{seed}-{args.steps}"
            finished_before = (root / name / f"checkpoint_{args.steps:08d}").is_dir()
            started = time.time()
            run([*cli, "train", "--preset", args.preset, f"model.kind={kind}", f"train.steps={args.steps}",
                 f"train.seed={seed}", f"train.workers={args.workers}", f"train.storage_path={root}",
                 f"train.name={name}", "train.eval_every=0", f"train.checkpoint_every={args.steps}",
                 f"train.image_every={max(1, args.steps // 4)}", *args.extra])
            if not finished_before:  # a reused run's minutes would be the few seconds of its start-up
                minutes[kind].append((time.time() - started) / 60)
            out = root / f"{name}.json"
            run([*cli, "evaluate", "--checkpoint", str(root / name), "--json", str(out)])
            results[kind].append(json.loads(out.read_text()))

    print(f"\n{args.preset} preset, {args.steps} steps, seeds {args.seeds}, extra {args.extra or 'none'}; "
          f"test split, {results[args.kinds[0]][0]['num']} images and as many samples\n")
    print("| kind | " + " | ".join(COLUMNS) + " | train min |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for kind in args.kinds:
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in results[kind] if r[column] is not None]
            if not values:
                cells.append("n/a")
            elif len(values) == 1:
                cells.append(f"{values[0]:.4g}")
            else:
                cells.append(f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}")
        trained = f"{statistics.mean(minutes[kind]):.1f}" if minutes[kind] else "(reused)"
        print(f"| {kind} | " + " | ".join(cells) + f" | {trained} |")


if __name__ == "__main__":
    main()
