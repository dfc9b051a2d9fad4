"""The main job's images/s under other splits of the machine's cores: Ray workers x threads, and DataLoader
processes, each run as the main job runs (`vaegan-dist train --preset smoke` plus overrides), in rounds that
alternate the variants so that machine noise hits all of them alike.

    python bench/worker_split.py --steps 120 --rounds 2

images/s is every worker's together, from TensorBoard's perf/images_per_s after the first 40 steps (start-up and
the first data fetch excluded), without evaluation (train.eval_every=0): the training loop alone. The share of
peak is the run's own perf/peak_share (one worker's counted FLOP/s over its measured peak).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

VARIANTS: dict[str, list[str]] = {
    "2 workers x 1 thread, 1 loader each (preset)": [],
    "2 workers x 1 thread, no loader process": ["data.loader_workers=0"],
    "1 worker x 2 threads, batch 32, 1 loader": ["train.workers=1", "train.cpus_per_worker=2", "data.batch_size=32"],
    "1 worker x 2 threads, batch 32, no loader": ["train.workers=1", "train.cpus_per_worker=2", "data.batch_size=32",
                                                  "data.loader_workers=0"],
}


def run(name: str, overrides: list[str], steps: int, root: Path, index: int) -> tuple[float, float]:
    run_name = f"split{index}"
    command = [sys.executable, "-m", "vaegan_dist.cli.main", "train", "--preset", "smoke", f"train.name={run_name}",
               f"train.storage_path={root}", f"train.steps={steps}", "train.eval_every=0",
               "train.checkpoint_every=100000", "train.image_every=100000", "train.log_every=20", *overrides]
    with (root / f"{run_name}.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise SystemExit(f"{name}: training failed (exit {code}); see {root / run_name}.log")
    events = EventAccumulator(str(root / run_name / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    workers = 1 if "train.workers=1" in overrides else 2
    ips = [e.value * workers for e in events.Scalars("perf/images_per_s") if e.step > 40]
    share = [e.value for e in events.Scalars("perf/peak_share") if e.step > 40]
    return statistics.mean(ips), statistics.mean(share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="worker-split-") as tmp:
        root, index = Path(tmp), 0
        for r in range(args.rounds):
            for name, overrides in VARIANTS.items():
                results[name].append(run(name, overrides, args.steps, root, index))
                index += 1
                print(f"round {r + 1}: {name}: {results[name][-1][0]:.1f} img/s", flush=True)
    base = statistics.mean(ips for ips, _ in results[next(iter(VARIANTS))])
    print(f"\nimages/s (all workers), mean of {args.rounds} rounds of {args.steps} steps, steps 41+:")
    for name, values in results.items():
        ips = statistics.mean(v for v, _ in values)
        share = statistics.mean(s for _, s in values)
        print(f"  {name:46s} {ips:6.1f} img/s  {ips / base:4.2f}x the preset  {100 * share:3.0f}% of peak")


if __name__ == "__main__":
    main()
