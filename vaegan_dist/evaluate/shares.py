"""Evaluation shared by the ranks of a process group: each scores its share of the batches, the per-batch records
meet on rank 0 (or on every rank), and the metrics are computed once from all of them, in batch order.

The share is by batch index (rank r scores batches r, r + W, ...), and each rank still draws every batch's z
from the one seeded generator, skipping the batches of the others: the samples, and so the metrics, are those
of one process at the same N and seed (tests/integration/test_ddp.py checks it with 2 gloo ranks). The records
travel as pickled CPU tensors (``gather_object``): a few MB per thousand images, sent once per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist


@dataclass(frozen=True)
class Share:
    rank: int = 0
    world: int = 1

    def mine(self, batch_index: int) -> bool:
        return batch_index % self.world == self.rank

    def on_rank0(self, records: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Every rank's records on rank 0, in batch order; None on the others."""
        if self.world == 1:
            return records
        parts: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(records, parts, dst=0)
        return _in_order(parts) if self.rank == 0 else None

    def everywhere(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's records on every rank, in batch order."""
        if self.world == 1:
            return records
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, records)
        return _in_order(parts)


def _in_order(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return sorted((r for part in parts for r in part), key=lambda r: r["index"])


ONE_PROCESS = Share()


def process_group_share() -> Share:
    """This process's share of the default process group (one process when there is none)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Share(dist.get_rank(), dist.get_world_size())
    return ONE_PROCESS
