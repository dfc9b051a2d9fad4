"""Evaluation shared by the ranks: wall time of one evaluation of the cheap metrics with 1 and with 2 gloo
processes, each with the threads a training worker of the main job has (1 core each on a 2-core machine), side by
side in one run.

    python bench/shared_evaluation.py                       # N = 400 (the smoke preset's) and 2000, 5 repeats
    python bench/shared_evaluation.py --num 400 2000 10000 --repeats 3 --threads 1

One worker is how training evaluated before (rank 0 alone while the others waited at the report); two share the
batches (vaegan_dist/evaluate/shares.py). The model is the smoke preset's networks (random weights: the cost does
not depend on them), the evaluator a random one of the built-in faces' shape, the images random. The held-out
features (computed once per run) are timed apart. Repeats alternate 1 and 2 processes, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vaegan_dist.config import build_config
from vaegan_dist.evaluate import CHEAP_METRICS, Evaluator, HeldOut, model_metrics
from vaegan_dist.evaluate.classifier import AttributeClassifier
from vaegan_dist.evaluate.distributed import free_loopback_port
from vaegan_dist.evaluate.shares import Share
from vaegan_dist.model import build_model


def _worker(rank: int, world: int, port: int, threads: int, num: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(threads)
    cfg = build_config("smoke", [])
    size = cfg.data.image_size
    torch.manual_seed(0)
    model = build_model(cfg.model, size)
    evaluator = Evaluator(AttributeClassifier(size, 40).eval(), [f"a{i}" for i in range(40)], size, "", "", {})
    images = torch.randint(0, 256, (num, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    share = Share(rank, world)
    dist.barrier()
    started = time.perf_counter()
    held_out = HeldOut.of(images, evaluator, share=share)
    held_out_s = time.perf_counter() - started
    dist.barrier()
    started = time.perf_counter()
    values = model_metrics(model, evaluator, held_out, CHEAP_METRICS, share=share)
    evaluation_s = time.perf_counter() - started
    if rank == 0:
        Path(out).write_text(json.dumps({"held_out_s": held_out_s, "evaluation_s": evaluation_s, "fd": values["fd"]}))
    dist.destroy_process_group()


def one_run(world: int, threads: int, num: int) -> dict[str, float]:
    port = free_loopback_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/result.json"
        mp.start_processes(_worker, args=(world, port, threads, num, out), nprocs=world, join=True,
                           start_method="spawn")
        return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, nargs="+", default=[400, 2000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="per process (a training worker's cores)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s) per process, "
          f"{args.repeats} repeats, medians")
    print(f"{'N':>6} {'workers':>7} {'evaluation s':>13} {'held-out s':>11} {'fd':>10}")
    for num in args.num:
        runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for world in (1, 2):
                runs[world].append(one_run(world, args.threads, num))
        medians = {w: {k: statistics.median(r[k] for r in rs) for k in ("evaluation_s", "held_out_s")}
                   for w, rs in runs.items()}
        for world in (1, 2):
            print(f"{num:>6} {world:>7} {medians[world]['evaluation_s']:>13.3f} {medians[world]['held_out_s']:>11.3f} "
                  f"{runs[world][0]['fd']:>10.4f}")
        print(f"{num:>6}   ratio {medians[2]['evaluation_s'] / medians[1]['evaluation_s']:>13.2f} "
              f"{medians[2]['held_out_s'] / medians[1]['held_out_s']:>11.2f}  (2 workers / 1; the same fd)")


if __name__ == "__main__":
    main()
