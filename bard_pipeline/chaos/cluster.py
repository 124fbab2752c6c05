"""A node lost mid-stage: the run joins a multi-node Ray cluster (``ray.address``) and a worker node is killed
(its raylet and every worker on it, SIGKILL) while the stage runs. The stage must finish on what is left, or
fail naming the lost node and finish on a rerun; either way nothing is lost. A trial in which no actor of the
run was on the lost node tested nothing and does not count as survived.

What running against a cluster takes, as found here: the nodes must import ``bard_pipeline`` (installed in
their environment, or a runtime env), every node must reach the store (a shared path for ``file://``, else
S3), and training's per-worker CPUs must fit one node (``*.resources.cpus_per_worker``; execution-only, so
the fingerprints stay the clean run's).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bard_pipeline.chaos.drivers import CleanRun, seed_store, wait_until
from bard_pipeline.chaos.harness import TrialError, completed_rows, kill_tree, wait_for
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.rows import diff
from bard_pipeline.infra.store import ArtifactStore

# One CPU per training worker (a node of the test cluster has one), and per engine replica (so that a stage's
# two replicas are placed one per node: with half a CPU each, Ray packed both on the head).
FIT_OVERRIDES = ("sft.resources.cpus_per_worker=1", "rl.resources.cpus_per_worker=1",
                 "sample.resources.cpus_per_replica=1", "compress.resources.cpus_per_replica=1")  # fmt: skip
STAGE_TIMEOUT_S = 900.0  # a stage waiting for the lost node's resources forever counts as failed


@dataclass(frozen=True)
class NodeTarget:
    """A running cluster the trial's run joins, and how to lose its worker node."""

    address: str  # the GCS address, for ray.address
    kill_worker: Callable[[], None]
    actors_on_worker: Callable[[], int]  # live actors there: what the loss takes down (0: the trial tested nothing)
    overrides: Sequence[str] = FIT_OVERRIDES


def _wait_for_victims(proc: Any, log: Path, stage: str, target: NodeTarget, timeout_s: float = 120.0) -> int:
    """Until one of the run's actors is on the worker node while ``stage`` runs (Ray places them as it sees fit);
    the count."""
    deadline = time.monotonic() + timeout_s
    while (victims := target.actors_on_worker()) == 0:
        done = f"{stage}: committed" in log.read_text(encoding="utf-8", errors="replace")
        if done or proc.poll() is not None or time.monotonic() > deadline:
            raise TrialError(f"no actor of the run was placed on the worker node during {stage}: nothing to lose")
        time.sleep(0.2)
    return victims


def lost_node(
    clean: CleanRun, stage: str, workdir: Path, target: NodeTarget, rng: random.Random, trigger: str | None = None
) -> TrialResult:
    store_dir = workdir / "store"
    seed_store(clean, store_dir, stage)
    extra = (f"ray.address={target.address}", *target.overrides)
    first = clean.launch(store_dir, workdir / "lost-node.log", extra)
    proc = first.start()
    try:
        wait_for(proc, first.log, f"{stage}: building")
        if trigger:
            wait_until(proc, store_dir, stage, trigger)
        time.sleep(rng.uniform(0.0, 1.0))
        victims = _wait_for_victims(proc, first.log, stage, target)
    except TrialError as exc:
        kill_tree(proc.pid)  # not left running on a cluster its caller is about to stop
        return TrialResult(Fault.LOST_NODE, False, detail=f"{stage}: {exc}")
    target.kill_worker()
    t_fault = time.monotonic()
    try:
        code = proc.wait(timeout=STAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        hung = f"{stage}: {victims} actors lost; the run hung on the lost node's resources"
        return TrialResult(Fault.LOST_NODE, False, recovery_s=STAGE_TIMEOUT_S, detail=hung)
    how = "finished on the node left"
    if code != 0:
        text = first.log_text()
        named = any(word in text for word in ("node", "Node"))
        how = "failed naming the lost node, rerun finished" if named else "failed without naming the node"
        rerun = clean.launch(store_dir, workdir / "rerun.log", extra)
        if rerun.run() != 0:
            return TrialResult(Fault.LOST_NODE, False, recovery_s=time.monotonic() - t_fault,
                               detail=f"{stage}: the rerun failed too (see {rerun.log})")  # fmt: skip
    recovery_s = time.monotonic() - t_fault
    rows = diff(clean.expected(), completed_rows(ArtifactStore(f"file://{store_dir}")))
    survived = rows.equal and "without naming" not in how and victims > 0
    detail = f"{stage}: {victims} actors on the lost node; {how}"
    return TrialResult(Fault.LOST_NODE, survived, rows.lost, rows.duplicated, recovery_s, detail=detail)
