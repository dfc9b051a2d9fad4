"""Everything we rely on that Ray 2.60 does not offer publicly, in one file: a Ray upgrade is this file to read.

Ray's version, ``RAY_VERSION``, is named in pyproject.toml (the 2.60 series, with the extras default, serve,
train and tune), cluster/aws.yaml and cluster/gcp.yaml (the pip pin), cluster/Dockerfile (the base image) and
cluster/kuberay/*.yaml (``rayVersion``); tests/unit/test_cluster_configs.py checks that they all name this one.

On an upgrade, check each item below against the new Ray (``ray/train/v2``, ``ray/tune``, ``ray/_private``),
then change ``RAY_VERSION`` and the files above together:

1. :func:`quiet_report_log`: Train V2 logs every ``ray.train.report`` at INFO under a logger named after the
   file of ``ray.train.v2._internal.execution.context``; LoggingConfig does not reach it.
2. :func:`raised_in_worker`: a worker's exception arrives wrapped in ``UserExceptionWithTraceback``, whose
   private ``_base_exc`` is the only way back to the exception our code raised.
3. :func:`configure_train_controller`: the controller reads ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S`` and
   ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` from its environment (Train propagates both from the driver,
   ``ENV_VARS_TO_PROPAGATE``); ScalingConfig and RunConfig carry no such settings. The second is also how often
   the controller takes a report: each poll takes at most one from each worker, and a worker's
   ``ray.train.report`` blocks until its previous one was taken (a queue of one, ``_wait_then_report``). At
   Ray's 2 s a run that reports more often than every 2 s trains at the poll's pace: the smoke networks at batch
   8 on one worker, reporting a checkpoint every 10 steps, trained at 51 img/s with Ray's poll and 147 with
   ours (``bench/report_poll.py``; bench/RESULTS.md, "Train V2's report poll"). So a run reports at its
   evaluations and checkpoints only (train/loop.py), and the controller polls every 0.5 s, which costs it 0.7%
   of a core against 0.6% at 2 s (same bench). Check that the report queue and the poll still work this way.
4. :data:`WORKER_ENV`: ``RAY_TRAIN_ENABLE_PRINT_PATCH=0``, else every print of a worker shows twice (also in
   cluster/runtime_env.yaml for jobs submitted with it).
5. :func:`tune_without_tensorboard_logger`: ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``, read when the Tuner starts.
6. :func:`quiet_local_cluster`: a local ``ray.init()`` turns token authentication on by default and
   warns that it did unless ``RAY_AUTH_MODE`` is set (``ray/_private/authentication/authentication_token_setup``);
   we turn it on with that module's private ``_enable_token_auth``, which also refreshes the process's cached
   RayConfig (the variable alone, set after ``import ray``, left this process's client 'disabled' against a
   GCS that wanted a token: "Failed to start GCS").
7. :func:`quiet_local_cluster` also turns off Train V2's preemption watcher (``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER``,
   propagated from the driver to the controller): on a cluster started here no node is ever drained, and its
   actor is created in a way that Ray's own core worker reports as an error-level line on every run
   (``core_worker.cc: ... 'PreemptionWatcher' ... has constructor arguments in the object store and
   max_restarts > 0``, ray-project/ray#53727). Check whether a new Ray still prints it.
8. vaegan_dist/train/ray_reaper.py reads Ray's process tree: the agents' names (``ray::DashboardAgent``), the
   ``RAY_NODE_ID`` and ``RAY_RAYLET_PID`` in their environments, and relies on the 60 s timeout of
   ``ray._private.utils.publish_error_to_driver`` being why they outlive a killed driver. It stays a module of
   its own (a process of its own, Linux only); its docstring says what it measured.
9. :func:`forget_train_checkpoints`: Train V2 keeps the checkpoints it knows of in
   ``<run>/checkpoint_manager_snapshot.json`` (``CHECKPOINT_MANAGER_SNAPSHOT_FILENAME`` in
   ``ray.train.v2._internal.constants``) and, on a new fit of the same run, returns its latest from
   ``get_checkpoint()``. A PBT trial that adopts another trial's checkpoint removes it together with its own
   checkpoints, so Train starts the run knowing none and the loop resumes from the adopted one on disk
   (vaegan_tune/adopt.py).
10. :data:`HEAD_NODE_RESOURCE`: the head node has a resource ``node:__internal_head__`` of 1 (Ray's name, used by
   Serve and the autoscaler); a PBT sweep whose population is larger than the cluster holds gives each trial's
   driver a share of it such that n fit and n + 1 do not, which bounds how many run at once (vaegan_tune/pbt.py).
   Train V2 places each run's placement-group cleaner with 0.001 of the same resource: with all of it taken, a
   trial's worker group started and then waited for the cleaner forever (measured); the shares leave room.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

RAY_VERSION = "2.60.0"

WORKER_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}

HEAD_NODE_RESOURCE = "node:__internal_head__"  # item 10
TRAIN_RUN_STATE_FILE = "checkpoint_manager_snapshot.json"  # item 9


def quiet_report_log() -> None:
    """Silence Train V2's per-report INFO line (item 1), which at our log interval would drown the progress
    lines. Ray offers no public way to name that logger, so its file name comes from the private module."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # a later Ray moved it; its default is then whatever that version chose
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def raised_in_worker(failure: BaseException) -> BaseException:
    """The exception the worker's code raised (item 2); a Ray that drops ``_base_exc`` gives the wrapper, and the
    launcher then shows Ray's own message."""
    return getattr(failure, "_base_exc", failure)


REPORT_POLL_S = 0.5  # item 3: Train's controller polls its workers (and takes their reports) this often


def configure_train_controller(start_timeout_s: float) -> None:
    """How long one attempt to start the worker group waits, and how often the controller polls the workers and
    takes their reports (item 3): the process-wide environment writes of a training run. A user's own poll
    interval wins."""
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(start_timeout_s)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(REPORT_POLL_S))


def starts_a_cluster(address: str | None) -> bool:
    """Whether ``ray.init(address)`` would start a cluster here rather than join one (``RAY_ADDRESS``, the latest
    ``ray start`` on this machine, an address): Ray's own reading of the address (private, item 6)."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address(address or None) is None
    except Exception:  # noqa: BLE001 - an address Ray cannot read: ray.init says so in its own words
        return False


def quiet_local_cluster(address: str | None) -> None:
    """Before ``ray.init(address)`` starts a cluster here: say explicitly what Ray 2.60 chooses by default, token
    authentication (item 6; left implicit, Ray warns that it chose it on every run of the main job), and turn off
    the preemption watcher (item 7). A user's own setting of either variable wins, and nothing changes where
    ``ray.init`` would join a running cluster (``RAY_ADDRESS``, the latest ``ray start`` here): that cluster is as
    it was started, and a real cluster's drains are worth watching."""
    if not starts_a_cluster(address):
        return
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    if "RAY_AUTH_MODE" not in os.environ:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()  # RAY_AUTH_MODE=token, for this process's cached config and its children


def forget_train_checkpoints(run_dir: Path) -> None:
    """Make Train V2 forget the checkpoints of the run in ``run_dir`` (item 9): its next fit of that run starts
    from none of them. A missing file is fine (Train wrote none yet)."""
    (Path(run_dir) / TRAIN_RUN_STATE_FILE).unlink(missing_ok=True)


def tune_without_tensorboard_logger() -> None:
    """Tune's own result files (what ExperimentAnalysis reads) but not its TensorBoard logger (item 5): every
    trial's run already has a TensorBoard directory of its own, and a second copy would show each trial twice.
    A user's own setting of the variable wins."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
