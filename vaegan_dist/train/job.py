"""What the driver resolves once for a run and hands to every worker.

Resolving means: the config validated, paths made absolute, the run named, the data source opened and
checked. Doing it once where the command enters (the CLI, a Tune trial) keeps bad input failing in
seconds on the driver, costs one round trip to a remote manifest instead of one per worker and call,
and makes the run's identity (where it writes, what it resumes) the launcher's decision, never the
loop's: a Tune trial hands each run its own directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vaegan_dist.config import Config
from vaegan_dist.data.sources import ShardSource
from vaegan_dist.train.storage import RunStorage


@dataclass(frozen=True)
class TrainJob:
    cfg: Config
    run: RunStorage  # storage_path/name: checkpoints, TensorBoard, samples, config.yaml
    data: ShardSource  # the training split
    grid_data: ShardSource  # the split whose first images make the fixed reconstruction grid
    grid_split: str
    # The evaluator's state (Evaluator.state(): tensors and plain values), resolved on the driver and shipped
    # to rank 0 with the job so that no worker node needs the driver's cache; None = evaluation off.
    evaluator: dict[str, Any] | None = None
    # The config keys TensorBoard's HParams view shows for this run (a sweep: the swept ones); () = all.
    hparam_keys: tuple[str, ...] = ()
    # A PBT trial's start ("" otherwise): its checkpoints carry it (what a schedule's lineage follows), and a
    # start that finds the run directory owned by a later start of its trial writes no checkpoint.
    start_token: str = ""

    def with_run(self, run: RunStorage) -> TrainJob:
        """This job in another run directory (a Tune trial's), its config saying so too: a config.yaml or
        checkpoint copied from the trial must name the trial's run, never the one it was derived from."""
        train = dataclasses.replace(self.cfg.train, storage_path=run.storage_path, name=run.name)
        return dataclasses.replace(self, cfg=dataclasses.replace(self.cfg, train=train), run=run)
