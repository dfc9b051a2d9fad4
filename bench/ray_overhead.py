"""What Ray Train costs: step throughput inside a Ray Train worker vs the same loop bare in this process,
the time from submitting to the first training step, and 1 vs 2 workers, on this machine's CPUs.

    python bench/ray_overhead.py                 # smoke model, 240 steps per run
    python bench/ray_overhead.py --steps 400

Each run is `vaegan_dist.train.launcher.launch` with the smoke preset on the built-in faces (rendered
once beforehand); throughput is the images/s of the last logging interval (steady state, after start-up
and the shuffle buffer have filled), read back from the final checkpoint. The 1-worker Ray run gets as
many CPUs as the bare run has threads, so the ratio isolates Ray's overhead. Runs alternate bare / Ray
twice and the medians are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from vaegan_dist.config import build_config
from vaegan_dist.data.synthetic import ensure_synthetic
from vaegan_dist.model.store import load_state
from vaegan_dist.train.launcher import launch


def run(data: str, root: str, name: str, steps: int, workers: str, cpus: int) -> tuple[float, float]:
    """(images/s over all workers in the last interval, seconds from launch to the first step)."""
    cfg = build_config("smoke", [f"data.source={data}", f"train.storage_path={root}", f"train.name={name}",
                                 f"train.steps={steps}", f"train.log_every={steps // 4}",
                                 f"train.checkpoint_every={steps}", "train.image_every=100000",
                                 f"train.workers={workers}", f"train.cpus_per_worker={cpus}"])
    started = time.time()
    run_dir = launch(cfg)
    metrics = load_state(run_dir)["metrics"]
    world = int(workers) if workers != "0" else 1
    return metrics["perf/images_per_s"] * world, metrics["perf/first_step_unix"] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=240)
    args = parser.parse_args()
    import ray

    cores = os.cpu_count() or 1
    data = str(ensure_synthetic(os.path.expanduser("~/vaegan-dist/data"), 4096, 32, progress=False))
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "ray1": [], "ray2": []}
    with tempfile.TemporaryDirectory() as root:
        t0 = time.time()
        ray.init(num_cpus=cores)
        ray_start = time.time() - t0
        for repeat in range(2):
            results["bare"].append(run(data, root, f"bare{repeat}", args.steps, "0", cores))
            results["ray1"].append(run(data, root, f"ray1-{repeat}", args.steps, "1", cores))
            results["ray2"].append(run(data, root, f"ray2-{repeat}", args.steps, "2", max(1, cores // 2)))
        ray.shutdown()
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in results.items()}
    print(f"smoke preset, batch 32 per worker, {args.steps} steps per run, {cores} CPU cores, median of 2 runs each")
    print(f"  bare loop (train.workers=0):        {med['bare'][0]:7.1f} img/s   "
          f"first step after {med['bare'][1]:5.1f} s")
    print(f"  Ray Train, 1 worker x {cores} CPUs:     {med['ray1'][0]:7.1f} img/s   "
          f"first step after {med['ray1'][1]:5.1f} s")
    print(f"  Ray Train, 2 workers x {max(1, cores // 2)} CPU:      {med['ray2'][0]:7.1f} img/s   "
          f"first step after {med['ray2'][1]:5.1f} s")
    print(f"  in-worker / bare throughput: {med['ray1'][0] / med['bare'][0]:.3f}; 2 workers / 1 worker: "
          f"{med['ray2'][0] / med['ray1'][0]:.2f}x; ray.init of a local cluster: {ray_start:.1f} s")


if __name__ == "__main__":
    main()
