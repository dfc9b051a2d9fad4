"""What Train V2's report poll costs a run that reports often: one Ray Train worker with the smoke networks at
batch 8 reporting (a checkpoint) every --report-every steps, with the controller polling its workers every 2 s
(Ray's default) and every 0.5 s (ours, vaegan_dist.ray_compat.REPORT_POLL_S), and the same run reporting only
at its end under both polls; alternating, twice each, on one local Ray.

    python bench/report_poll.py
    python bench/report_poll.py --report-every 100 --steps 400   # reports rarer than the poll: no difference

A worker's ``ray.train.report`` waits until the controller took its previous report, and the controller takes
one per worker per poll (ray_compat item 3): a run that reports more often than it is polled trains at the
poll's pace. Throughput is the mean of the run's logged images/s after its first interval (TensorBoard); the
controller's CPU is read from /proc while it runs, as a share of one core after its start-up (what a faster
poll costs it, for as long as a run lasts).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vaegan_dist.config import build_config
from vaegan_dist.data.synthetic import ensure_synthetic
from vaegan_dist.procfs import cpu_seconds
from vaegan_dist.ray_compat import REPORT_POLL_S
from vaegan_dist.train.launcher import launch


def controller_cpu() -> dict[int, float]:
    """CPU seconds used by each running Ray Train controller process, by pid."""
    found = {}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "ray::TrainContr":  # the kernel's 15 characters of the actor's name
                continue
        except OSError:
            continue
        seconds = cpu_seconds(int(comm.parent.name))
        if seconds is not None:
            found[int(comm.parent.name)] = seconds
    return found


class ControllerCpu:
    """The CPU that this run's Train controller spends per second once started: sampled every 0.5 s, the slope
    from 5 s after it first appeared to its last sample (its start-up, importing Ray Train, is left out).
    Controllers that existed before the run (an earlier run's, still exiting) are ignored."""

    def __init__(self) -> None:
        self._before = set(controller_cpu())
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            ours = {pid: cpu for pid, cpu in controller_cpu().items() if pid not in self._before}
            if ours:
                self._samples.append((time.perf_counter(), max(ours.values())))

    @property
    def per_second(self) -> float:
        if not self._samples:
            return float("nan")
        settled = [s for s in self._samples if s[0] >= self._samples[0][0] + 5.0]
        if len(settled) < 2:
            return float("nan")
        (t0, c0), (t1, c1) = settled[0], settled[-1]
        return (c1 - c0) / (t1 - t0)

    def __enter__(self) -> ControllerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(data: str, root: str, name: str, steps: int, report_every: int, poll_s: float) -> tuple[float, float, float]:
    """(mean images/s after the first interval, wall seconds of the run, the controller's CPU share of a core)."""
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(poll_s)  # what each new controller reads
    cfg = build_config("smoke", [f"data.source={data}", f"train.storage_path={root}", f"train.name={name}",
                                 f"train.steps={steps}", "train.log_every=10", "train.eval_every=0",
                                 f"train.checkpoint_every={report_every}", f"train.keep_checkpoints={steps}",
                                 "train.image_every=100000", "train.workers=1", "train.cpus_per_worker=1",
                                 "data.batch_size=8", "data.loader_workers=0"])
    started = time.perf_counter()
    with ControllerCpu() as controller:
        run_dir = launch(cfg)
    wall = time.perf_counter() - started
    events = EventAccumulator(str(Path(run_dir) / "tensorboard"))
    events.Reload()
    rates = [e.value for e in events.Scalars("perf/images_per_s")][1:]
    return statistics.mean(rates), wall, controller.per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--report-every", type=int, default=10)
    args = parser.parse_args()
    import ray

    data = str(ensure_synthetic(os.path.expanduser("~/vaegan-dist/data"), 4096, 32, progress=False))
    runs = {f"every {args.report_every} steps, poll 2 s (Ray's)": (args.report_every, 2.0),
            f"every {args.report_every} steps, poll {REPORT_POLL_S} s (ours)": (args.report_every, REPORT_POLL_S),
            f"at the end only, poll {REPORT_POLL_S} s": (args.steps, REPORT_POLL_S),
            "at the end only, poll 2 s": (args.steps, 2.0)}
    results: dict[str, list[tuple[float, float, float]]] = {label: [] for label in runs}
    with tempfile.TemporaryDirectory() as root:
        ray.init(num_cpus=os.cpu_count() or 1)
        for repeat in range(2):
            for i, (label, (every, poll)) in enumerate(runs.items()):
                results[label].append(run(data, root, f"run{i}-{repeat}", args.steps, every, poll))
        ray.shutdown()
    print(f"smoke networks, 1 worker x 1 CPU, batch 8, {args.steps} steps, mean of 2 runs each; reports:")
    med = {label: [statistics.mean(r[i] for r in rs) for i in range(3)] for label, rs in results.items()}
    for label, (rate, wall, cpu) in med.items():
        print(f"  {label:34s} {rate:7.1f} img/s   run {wall:5.1f} s   controller {100 * cpu:4.1f}% of a core")
    slow, fast, ceiling, _ = med.values()
    print(f"  img/s, ours / Ray's poll: {fast[0] / slow[0]:.2f}x; ours / reporting at the end: "
          f"{fast[0] / ceiling[0]:.2f}")


if __name__ == "__main__":
    main()
