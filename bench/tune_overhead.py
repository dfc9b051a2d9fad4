"""What a Tune sweep costs per trial: a 4-trial sweep against bare `vaegan-dist train` runs of the same config.

    python bench/tune_overhead.py                       # smoke model, 100 steps per run, one trial at a time
    python bench/tune_overhead.py --steps 200 --cpus-per-worker 0.49   # four trials at a time on 2 cores

Measured side by side in one process and one local Ray (started once, not counted):
- bare start-up: `launch()` (what `vaegan-dist train` runs) called to the first training step, twice;
- per-trial overhead: a trial's function started to its first training step (the trial resolves its
  config and run directory, then starts its own TorchTrainer, controller and worker group);
- Tune's queueing: sweep started to each trial's start;
- the sweep's wall time and trials per hour.
Goal: per-trial overhead within 1.5x the bare start-up time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from vaegan_dist.config import build_config
from vaegan_dist.data.synthetic import ensure_synthetic
from vaegan_dist.model.store import load_state
from vaegan_dist.train.launcher import launch
from vaegan_tune.sweep import SweepSettings, run_sweep
from vaegan_tune.trial import TRIAL_STARTED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cpus-per-worker", type=float, default=1.5, help="1.5 on 2 cores: one trial at a time")
    args = parser.parse_args()
    import ray

    cores = os.cpu_count() or 1
    data = str(ensure_synthetic(Path("~/vaegan-dist/data").expanduser(), 4096, 32, progress=False))
    overrides = [f"data.source={data}", "train.workers=1", f"train.cpus_per_worker={args.cpus_per_worker}",
                 f"train.steps={args.steps}", f"train.log_every={args.steps // 4}",
                 f"train.eval_every={args.steps // 2}", f"train.checkpoint_every={args.steps}",
                 f"train.image_every={args.steps}"]
    ray.init(num_cpus=cores)
    with tempfile.TemporaryDirectory() as root:
        bare = []
        for repeat in range(2):
            started = time.time()
            run_dir = launch(build_config("smoke", [*overrides, f"train.storage_path={root}",
                                                    f"train.name=bare{repeat}"]))
            bare.append(load_state(run_dir)["metrics"]["perf/first_step_unix"] - started)
        space = "objective.gamma: {grid: [1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1]}\n"
        settings = SweepSettings(space=space, space_file="bench-space.yaml", preset="smoke",
                                 overrides=(*overrides, f"train.storage_path={root}"), search="grid",
                                 scheduler="fifo", name="sweep")
        sweep_started = time.time()
        run_sweep(settings)
        wall = time.time() - sweep_started
        from ray.tune import ExperimentAnalysis

        trials = [t.last_result for t in ExperimentAnalysis(str(Path(root) / "sweep")).trials]
    ray.shutdown()
    overhead = [m["perf/first_step_unix"] - m[TRIAL_STARTED] for m in trials]
    queued = sorted(m[TRIAL_STARTED] - sweep_started for m in trials)
    print(f"\nsmoke preset, 1 worker x {args.cpus_per_worker} CPU per run, {args.steps} steps, {cores} CPU cores")
    print(f"  bare launch -> first step:           {statistics.median(bare):6.1f} s  (runs: "
          f"{', '.join(f'{b:.1f}' for b in bare)})")
    print(f"  trial start -> first step:           {statistics.median(overhead):6.1f} s  (trials: "
          f"{', '.join(f'{o:.1f}' for o in overhead)})")
    print(f"  ratio (goal <= 1.5):                 {statistics.median(overhead) / statistics.median(bare):6.2f}")
    print(f"  sweep start -> each trial's start:   {', '.join(f'{q:.1f}' for q in queued)} s")
    print(f"  4-trial sweep wall time:             {wall:6.1f} s  ({len(trials) / wall * 3600:.0f} trials/hour)")


if __name__ == "__main__":
    main()
