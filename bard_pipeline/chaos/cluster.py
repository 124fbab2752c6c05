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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bard_pipeline.chaos.drivers import TRIGGERS, CleanRun, seed_store, wait_glob
from bard_pipeline.chaos.harness import TrialError, completed_rows, wait_for
from bard_pipeline.chaos.report import TrialResult
from bard_pipeline.chaos.rows import diff
from bard_pipeline.infra.store import ArtifactStore

# One CPU per training worker: a node of the test cluster has one.
FIT_OVERRIDES = ("sft.resources.cpus_per_worker=1", "rl.resources.cpus_per_worker=1")


@dataclass(frozen=True)
class NodeTarget:
    """A running cluster the trial's run joins, and how to lose its worker node."""

    address: str  # the GCS address, for ray.address
    kill_worker: Callable[[], None]
    actors_on_worker: Callable[[], int]  # live actors there: what the loss takes down (0: the trial tested nothing)
    overrides: Sequence[str] = FIT_OVERRIDES


def _wait_for_victims(proc: Any, target: NodeTarget, timeout_s: float = 120.0) -> int:
    """Until one of the run's actors is on the worker node (Ray places them as it sees fit); the count."""
    deadline = time.monotonic() + timeout_s
    while (victims := target.actors_on_worker()) == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise TrialError("no actor of the run was placed on the worker node: nothing to lose there")
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
            wait_glob(proc, store_dir, TRIGGERS[trigger].format(stage=stage))
        time.sleep(rng.uniform(0.0, 1.0))
        victims = _wait_for_victims(proc, target)
    except TrialError as exc:
        return TrialResult("lost node", False, detail=f"{stage}: {exc}")
    target.kill_worker()
    t_fault = time.monotonic()
    code = proc.wait()
    how = "finished on the node left"
    if code != 0:
        text = first.log_text()
        named = any(word in text for word in ("node", "Node"))
        how = "failed naming the lost node, rerun finished" if named else "failed without naming the node"
        rerun = clean.launch(store_dir, workdir / "rerun.log", extra)
        if rerun.run() != 0:
            return TrialResult("lost node", False, recovery_s=time.monotonic() - t_fault,
                               detail=f"{stage}: the rerun failed too (see {rerun.log})")  # fmt: skip
    recovery_s = time.monotonic() - t_fault
    rows = diff(clean.expected(), completed_rows(ArtifactStore(f"file://{store_dir}")))
    survived = rows.equal and "without naming" not in how and victims > 0
    detail = f"{stage}: {victims} actors on the lost node; {how}"
    return TrialResult("lost node", survived, rows.lost, rows.duplicated, recovery_s, detail=detail)
