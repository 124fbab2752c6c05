"""The campaign: which faults, how many trials each, against one clean run of a recipe.

Faults are an enum-keyed registry; each entry runs its trials in folders of their own under the campaign's
work folder and returns their results. ``benchmarks/chaos.py`` is the command line, ``tests/reliability`` the
short version.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from bard_pipeline.chaos.bad_input import trials as bad_input_trials
from bard_pipeline.chaos.cluster import NodeTarget, lost_node
from bard_pipeline.chaos.drivers import KILL_STAGES, CleanRun, concurrent_runs, killed_driver, shared_data_runs
from bard_pipeline.chaos.flaky import flaky_s3
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.s3proxy import FaultPlan
from bard_pipeline.chaos.server import StackTarget, server_restart
from bard_pipeline.chaos.storage import corruption, full_disk
from bard_pipeline.infra.stack import Stack
from bard_pipeline.tasks.context import UNTIL_STAGES
from bard_pipeline.tasks.stage import STAGES


@dataclass(frozen=True)
class Plan:
    """How much of each fault: ``trials`` per fault (killed driver: spread over ``KILL_STAGES`` in turn)."""

    trials: int = 1
    seed: int = 0
    kill_stages: tuple[str, ...] = KILL_STAGES
    disk_stages: tuple[str, ...] = ("sample", "sft")
    corrupt_stages: tuple[str, ...] = ("sample", "sft")
    node_stages: tuple[str, ...] = ("sample", "sft")
    # A fresh multi-node cluster per lost-node trial (the caller's: e.g. tests/support/ray_cluster.py).
    cluster: Callable[[Path], AbstractContextManager[NodeTarget]] | None = None
    # A real S3 API with a bucket, as (endpoint, bucket), per flaky-S3 trial.
    s3: Callable[[Path], AbstractContextManager[tuple[str, str]]] | None = None
    # A running `bard up` stack, and how to start its Prefect server again (flows.stack_cli.start_server).
    stack: Callable[[Path], AbstractContextManager[StackTarget]] | None = None
    restart: Callable[[Stack, int], None] | None = None
    # The secrets trial with its servers (S3, an OpenAI-compatible server that 401s a wrong key): the caller's.
    secrets: Callable[[Path], TrialResult] | None = None
    bad_input_examples: int = 300  # generated cases per generator
    s3_fault_rate: float = 0.15
    # Killed driver: the rerun stops after the killed stage (a data stage: after materialize; its artifact then has
    # the clean run's fingerprint and rows, so every later stage gets the clean run's inputs), or runs to the end.
    rerun_to_end: bool = False


KILL_AFTER = {"sft": "checkpoint", "rl": "checkpoint"}  # what a resumable attempt leaves, per stage
Runner = Callable[[CleanRun, Path, Plan, random.Random], Iterator[TrialResult]]


def _until(stage: str) -> str:
    """The first stage a run can stop after (the data stages run as one block) at or past ``stage``."""
    return next(s for s in STAGES[STAGES.index(stage) :] if s in UNTIL_STAGES)


def _killed(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    for i in range(plan.trials):
        stage = plan.kill_stages[i % len(plan.kill_stages)]
        # Every other round waits for finished work first (a shard, a checkpoint), so reruns resume as well as
        # start over.
        after = None if (i // len(plan.kill_stages)) % 2 == 0 else KILL_AFTER.get(stage, "shard")
        reference = clean if plan.rerun_to_end else replace(clean, until=_until(stage))
        yield killed_driver(reference, stage, workdir / f"{i:02d}-{stage}", rng, after)


def _lost_node(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    if plan.cluster is None:
        raise ValueError("the lost-node fault needs Plan.cluster: a way to start a multi-node cluster")
    for i in range(plan.trials):
        stage = plan.node_stages[i % len(plan.node_stages)]
        trial_dir = workdir / f"{i:02d}-{stage}"
        with plan.cluster(trial_dir / "cluster") as target:
            # Training: once a checkpoint is registered. An engine stage: as soon as an actor is on the worker (its
            # shards are written as its pool finishes, so waiting for one leaves nothing to lose).
            yield lost_node(clean, stage, trial_dir, target, rng, trigger=KILL_AFTER.get(stage))


def _flaky(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    if plan.s3 is None:
        raise ValueError("the flaky-S3 fault needs Plan.s3: a way to start an S3 server")
    for i in range(plan.trials):
        with plan.s3(workdir / f"{i:02d}" / "s3") as (endpoint, bucket):
            faults = FaultPlan(rate=plan.s3_fault_rate, stall_s=1.0, seed=plan.seed + i)
            yield flaky_s3(clean, workdir / f"{i:02d}", endpoint, bucket, faults)


def _server(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    if plan.stack is None or plan.restart is None:
        raise ValueError("the server-restart fault needs Plan.stack and Plan.restart: a `bard up` stack")
    with plan.stack(workdir) as target:
        for _ in range(plan.trials):
            yield server_restart(clean, target, plan.restart)


def _secrets(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    if plan.secrets is None:
        raise ValueError("the secrets fault needs Plan.secrets: the trial with its S3 and OpenAI servers")
    for i in range(plan.trials):
        yield plan.secrets(workdir / f"{i:02d}")


def _bad_input(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    for _ in range(plan.trials):
        yield from bad_input_trials(plan.bad_input_examples, seed=rng.randrange(2**31))


def _concurrent(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    # In turn: three identical runs of the recipe, then two recipes that share its data stages.
    for i in range(plan.trials):
        runs = concurrent_runs if i % 2 == 0 else shared_data_runs
        yield runs(clean, workdir / f"{i:02d}")


def _full_disk(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    for i in range(plan.trials):
        stage = plan.disk_stages[i % len(plan.disk_stages)]
        yield full_disk(clean, stage, workdir / f"{i:02d}-{stage}")


def _corruption(clean: CleanRun, workdir: Path, plan: Plan, rng: random.Random) -> Iterator[TrialResult]:
    for i in range(plan.trials):
        stage = plan.corrupt_stages[i % len(plan.corrupt_stages)]
        yield corruption(clean, stage, workdir / f"{i:02d}-{stage}", rng)


RUNNERS: dict[Fault, Runner] = {
    Fault.KILLED_DRIVER: _killed,
    Fault.LOST_NODE: _lost_node,
    Fault.FLAKY_S3: _flaky,
    Fault.CONCURRENT_RUNS: _concurrent,
    Fault.FULL_DISK: _full_disk,
    Fault.CORRUPTION: _corruption,
    Fault.SERVER_RESTART: _server,
    Fault.SECRETS: _secrets,
    Fault.BAD_INPUT: _bad_input,
}


def run_campaign(
    clean: CleanRun, faults: list[Fault], workdir: Path, plan: Plan, on_result: Callable[[TrialResult], None]
) -> list[TrialResult]:
    rng = random.Random(plan.seed)
    results = []
    for fault in faults:
        try:
            for result in RUNNERS[fault](clean, workdir / fault.value, plan, rng):
                on_result(result)
                results.append(result)
        except Exception as exc:  # a harness error fails its fault's next trial and the campaign goes on
            failed = TrialResult(fault, False, detail=f"the trial raised {type(exc).__name__}: {exc}")
            on_result(failed)
            results.append(failed)
    return results
