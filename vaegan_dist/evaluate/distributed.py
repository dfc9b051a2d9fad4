"""``vaegan-dist evaluate --workers N``: one evaluation shared by N processes on this machine (torch.distributed:
gloo on CPUs, NCCL with one GPU each), for the large N that the standard figures need (FID and KID on 10k-50k
samples). Each process scores its share of the batches, rank 0 computes the metrics (vaegan_dist/evaluate/
shares.py): the result is one process's at the same N and seed.

On CPUs the processes split the cores between them (``torch.set_num_threads``): more processes than cores only
adds start-up. The processes start with the ``spawn`` method (nothing of this process is inherited but the
arguments) and meet at a rendezvous on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.errors import DataError

TIMEOUT = datetime.timedelta(minutes=30)  # a collective that waits longer than this means a lost process


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_workers(workers: int, device: str) -> None:
    if device == "cuda" and workers > torch.cuda.device_count():
        raise DataError(f"--workers {workers}: this machine has {torch.cuda.device_count()} GPU(s); one worker each")


def _worker(rank: int, workers: int, port: int, threads: int, out: str, kwargs: dict[str, Any]) -> None:
    import torch.distributed as dist

    from vaegan_dist.atomic import atomic_write_text
    from vaegan_dist.evaluate.run import evaluate_share
    from vaegan_dist.evaluate.shares import Share

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = kwargs["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
        kwargs = {**kwargs, "device": f"cuda:{rank}"}
    else:
        torch.set_num_threads(threads)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=workers, timeout=TIMEOUT)
    try:
        result = evaluate_share(**kwargs, log=print if rank == 0 else (lambda *_: None), share=Share(rank, workers))
        if result is not None:
            atomic_write_text(out, json.dumps(result))
    finally:
        dist.destroy_process_group()


def evaluate_in_processes(workers: int, checkpoint: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`vaegan_dist.evaluate.run.evaluate_share` in ``workers`` processes; rank 0's result."""
    import torch.multiprocessing as mp

    check_workers(workers, kwargs["device"])
    threads = max(1, (os.cpu_count() or 1) // workers)
    with tempfile.TemporaryDirectory(prefix="vaegan-evaluate-") as tmp:
        out = str(Path(tmp) / "result.json")
        try:
            mp.start_processes(_worker, args=(workers, free_loopback_port(), threads, out,
                                              {"checkpoint": str(checkpoint), **kwargs}),
                               nprocs=workers, join=True, start_method="spawn")
        # Its own error's last line, or how it died (a signal, the OOM killer).
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
            lines = [line for line in str(err).strip().splitlines() if line.strip()]
            raise DataError(f"--workers {workers}: a worker failed: {lines[-1] if lines else err}"[:500]) from None
        return json.loads(Path(out).read_text())
