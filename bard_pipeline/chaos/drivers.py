"""Faults of the driver: ``bard run`` SIGKILLed mid-stage, and several ``bard run`` of one recipe at once.

A killed-driver trial starts from a store holding the clean run's artifacts of the stages before the one it
kills (so each trial spends its time on the stage it tests), SIGKILLs the driver at a random moment of that
stage, reruns, and checks: the rerun completes, its rows equal the clean run's, no process of the killed
driver is alive, and the store holds no scratch (temp files, training scratch).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bard_pipeline.chaos.harness import (
    Launch,
    TrialError,
    completed_rows,
    latest_record,
    sigkill,
    still_alive,
    store_scratch,
    wait_for,
)
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.rows import RunRows, diff, run_rows
from bard_pipeline.infra.reaper import SCRATCH_PREFIX, system_tmp
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.tasks.stage import STAGES

KILL_STAGES = ("sample", "compress", "sft", "rl", "evaluate")


@dataclass(frozen=True)
class CleanRun:
    """The reference: a completed run of the recipe in a store of its own, and how its trials launch theirs
    (same recipe, overrides and environment, so the same fingerprints)."""

    recipe: str
    store_dir: Path
    rows: RunRows
    stage_s: Mapping[str, float]  # wall seconds per stage, to place kills inside a stage
    overrides: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    until: str | None = None  # trials stop after this stage (the short suite's: materialize)

    @classmethod
    def make(
        cls, recipe: str, workdir: Path, env: Mapping[str, str] | None = None, until: str | None = None
    ) -> CleanRun:
        store_dir = workdir / "clean-store"
        launch = Launch(recipe, f"file://{store_dir}", workdir / "clean.log", env=env)
        if launch.run() != 0:
            raise TrialError(f"the clean run of {recipe} failed; see {launch.log}")
        return cls.of(store_dir, env=env, until=until)

    @classmethod
    def of(cls, store_dir: Path, env: Mapping[str, str] | None = None, until: str | None = None) -> CleanRun:
        """The newest completed run in ``store_dir`` as the reference (e.g. the test session's smoke run): its
        recipe and overrides (less its store) are what the trials run."""
        store = ArtifactStore(f"file://{store_dir}")
        record = latest_record(store)
        if not record.get("recipe"):
            raise TrialError(f"run {record['run_id']} in {store.root} records no recipe file to rerun")
        overrides = tuple(o for o in record.get("overrides", []) if not o.startswith("store.root="))
        stage_s = {name: float(info["wall_s"]) for name, info in record["stages"].items()}
        return cls(record["recipe"], store_dir, completed_rows(store), stage_s, overrides, env, until)

    def launch(self, store_dir: Path, log: Path, extra: Sequence[str] = ()) -> Launch:
        """A trial's run: the clean run's recipe, overrides (plus execution-only ``extra``) and environment."""
        return Launch(self.recipe, f"file://{store_dir}", log, (*self.overrides, *extra), self.env, self.until)

    def expected(self) -> RunRows:
        """The rows a trial must end with: the clean run's, up to ``until``."""
        if self.until is None:
            return self.rows
        return self.rows.upto(stages_through(self.rows, self.until))


def stages_through(rows: RunRows, last: str) -> list[str]:
    """The stages of ``rows`` up to ``last``, as a run record names them (``model:toy-student``: with a label)."""
    end = STAGES.index(last)
    return [s for s in rows.artifacts if STAGES.index(s.split(":", 1)[0]) <= end]


def copy_stages(source: Path, target: Path, stages: Sequence[str]) -> None:
    """Copy the committed artifacts of ``stages`` from store folder ``source`` into ``target`` (not run records): a
    run of the same recipe there skips them (same fingerprints); a stage ``source`` lacks simply runs."""
    for stage in stages:
        if (source / stage).is_dir():
            shutil.copytree(source / stage, target / stage, dirs_exist_ok=True)


def seed_store(clean: CleanRun, target: Path, before: str) -> None:
    """Copy the clean run's committed artifacts of the stages before ``before``."""
    copy_stages(clean.store_dir, target, STAGES[: STAGES.index(before)])


def _shard_written(root: Path, stage: str) -> bool:
    return any(root.glob(f"{stage}/*/shards/*.parquet"))


def _checkpoint_registered(root: Path, stage: str) -> bool:
    """Ray Train has registered a checkpoint: its manager's snapshot names one, so a rerun resumes from it. (A
    ``checkpoint_*`` folder appears earlier, while it is written; killed then, a rerun rightly starts over.)"""
    for snapshot in root.glob("_scratch/ray_train/*/checkpoint_manager_snapshot.json"):
        try:
            if json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                return True
        except (OSError, ValueError):  # being written
            continue
    return False


# What a trial can wait for before its kill, beyond the stage's start: a finished shard, a saved checkpoint.
TRIGGERS: dict[str, Callable[[Path, str], bool]] = {"shard": _shard_written, "checkpoint": _checkpoint_registered}


def wait_until(proc: subprocess.Popen[bytes], root: Path, stage: str, trigger: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not TRIGGERS[trigger](root, stage):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise TrialError(f"no {trigger} of {stage} under {root} before the run ended or {timeout_s:.0f} s passed")
        time.sleep(0.1)


def landed_in(log_text: str) -> str:
    """The stage the killed run was in when it died: the last one its log shows building and not committed
    (a kill placed by the clean run's stage times can land after the stage it aimed at has finished)."""
    running = ""
    for line in log_text.splitlines():
        for stage in STAGES:
            if f" - {stage}: building" in line:
                running = stage
            elif f" - {stage}: committed" in line and running == stage:
                running = ""
    return running or "between stages"


def _resumed(store: ArtifactStore, stage: str, rerun_log: str) -> str:
    """How the rerun used the killed attempt's work: shards reused (its log), or training resumed (manifest)."""
    for line in rerun_log.splitlines():
        if f"{stage}: " in line and "shards reused from an interrupted attempt" in line:
            return line.split(f"{stage}: ", 1)[1].split(" from", 1)[0]  # "3 of 4 shards reused"
    train = next((m.stats.get("train", {}) for m in store.list(stage)), {})
    return "resumed from the checkpoint" if train.get("resumed") else "started over"


def killed_driver(
    clean: CleanRun,
    stage: str,
    workdir: Path,
    rng: random.Random,
    trigger: str | None = None,
    extra: Sequence[str] = (),
) -> TrialResult:
    """SIGKILL ``bard run`` at a random point of ``stage`` (at once after ``trigger``, a key of ``TRIGGERS``, if
    given), rerun, and compare with the clean run; no process or scratch of the killed driver may be left.
    ``extra``: execution-only overrides of both runs (smaller shards, so that a kill lands between them)."""
    store_dir = workdir / "store"
    seed_store(clean, store_dir, stage)
    first = clean.launch(store_dir, workdir / "killed.log", extra)
    proc = first.start()
    delay_s = rng.uniform(0.0, 0.2) if trigger else rng.uniform(0.0, 0.9 * clean.stage_s.get(stage, 5.0))
    try:
        wait_for(proc, first.log, f"{stage}: building")
        if trigger:
            wait_until(proc, store_dir, stage, trigger)
    except TrialError as exc:
        return TrialResult(Fault.KILLED_DRIVER, False, detail=f"{stage}: {exc}")
    time.sleep(delay_s)
    if proc.poll() is not None:
        return TrialResult(
            Fault.KILLED_DRIVER, False, detail=f"{stage}: the run ended before the kill at {delay_s:.1f} s"
        )
    orphans, driver_pid = sigkill(proc), proc.pid
    t_fault = time.monotonic()
    rerun = clean.launch(store_dir, workdir / "rerun.log", extra)
    code = rerun.run()
    recovery_s = time.monotonic() - t_fault
    where = f"{stage} +{delay_s:.1f} s" + (f" after a {trigger}" if trigger else "")
    if (landed := landed_in(first.log_text())) != stage:
        where += f" (landed in {landed}: {stage} had finished)"
    if code != 0:
        return TrialResult(Fault.KILLED_DRIVER, False, recovery_s=recovery_s, detail=f"{where}: rerun exit {code}")
    store = ArtifactStore(f"file://{store_dir}")
    stray = still_alive(orphans)
    scratch = store_scratch(store_dir) + [str(p) for p in system_tmp().glob(f"{SCRATCH_PREFIX}{driver_pid}-*")]
    rows = diff(clean.expected(), completed_rows(store))
    problems = [f"stray {stray[0]}"] if stray else []
    problems += [f"scratch {scratch[0]}"] if scratch else []
    problems += [f"artifacts differ: {', '.join(rows.artifacts_differ)}"] if rows.artifacts_differ else []
    detail = "; ".join([where, _resumed(store, stage, rerun.log_text()), *problems])
    return TrialResult(
        Fault.KILLED_DRIVER, not problems and rows.equal, rows.lost, rows.duplicated, recovery_s, detail=detail
    )


def _unverified(store: ArtifactStore) -> list[str]:
    """The stages of the committed artifacts in ``store`` that fail their checksums."""
    return [m.stage for m in store.list() if store.verify(ArtifactRef(m.stage, m.fingerprint))]


def concurrent_runs(clean: CleanRun, workdir: Path, copies: int = 3) -> TrialResult:
    """``copies`` identical ``bard run`` on one empty store at once: all complete, one consistent set of artifacts
    (every run's record names the clean run's artifacts), nothing lost or duplicated."""
    store_dir = workdir / "store"
    launches = [clean.launch(store_dir, workdir / f"run-{i}.log") for i in range(copies)]
    t0 = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = [launch.start() for launch in launches]
    codes = [proc.wait() for proc in procs]
    wall_s = time.monotonic() - t0
    if any(codes):
        return TrialResult(Fault.CONCURRENT_RUNS, False, recovery_s=wall_s, detail=f"exit codes {codes}")
    store = ArtifactStore(f"file://{store_dir}")
    lost = duplicated = 0
    differ: set[str] = set()
    for record in store.list_runs():
        result = diff(clean.expected(), run_rows(store, record))
        lost, duplicated = lost + result.lost, duplicated + result.duplicated
        differ |= set(result.artifacts_differ)
    bad = _unverified(store)
    survived = not (lost or duplicated or differ or bad)
    detail = f"{copies} runs in {wall_s:.0f} s" + (f"; differ: {sorted(differ)}" if differ else "")
    detail += f"; do not verify: {bad}" if bad else ""
    return TrialResult(Fault.CONCURRENT_RUNS, survived, lost, duplicated, wall_s, detail=detail)


# A second recipe that shares the clean recipe's data stages: another SFT learning rate changes sft and what follows.
SHARED_DATA_VARIANT = ("sft.trl.learning_rate=5.0e-4",)


def _artifact(record: Mapping[str, Any], stage: str) -> str | None:
    return record["stages"].get(stage, {}).get("artifact")


def shared_data_runs(clean: CleanRun, workdir: Path, variant: Sequence[str] = SHARED_DATA_VARIANT) -> TrialResult:
    """Two recipes that share the data stages (the clean one and ``variant``), started at once on one empty store:
    both complete; both name the clean run's data artifacts, with its rows; the clean recipe's run equals the clean
    run; the variant's own artifacts (sft onward) are new and verify. The detail says which data stages were built
    by both runs (harmlessly twice: the first manifest to land wins, the other run uses it) and which once."""
    store_dir, expected = workdir / "store", clean.expected()
    data = stages_through(expected, "materialize")
    launches = [clean.launch(store_dir, workdir / "base.log"), clean.launch(store_dir, workdir / "v.log", variant)]
    t0 = time.monotonic()
    codes = [proc.wait() for proc in [launch.start() for launch in launches]]
    wall_s = time.monotonic() - t0
    if any(codes):
        return TrialResult(Fault.CONCURRENT_RUNS, False, recovery_s=wall_s, detail=f"two recipes: exit codes {codes}")
    store = ArtifactStore(f"file://{store_dir}")
    records = store.list_runs()
    is_variant = [any(o in variant for o in r.get("overrides", [])) for r in records]
    if sorted(is_variant) != [False, True]:
        return TrialResult(
            Fault.CONCURRENT_RUNS, False, recovery_s=wall_s, detail=f"two recipes: {len(records)} records"
        )
    base, other = (records[is_variant.index(flag)] for flag in (False, True))
    same = diff(expected, run_rows(store, base))
    shared = diff(expected.upto(data), run_rows(store, other).upto(data))
    own = [s for s in other["stages"] if s not in data]
    problems = [f"the clean recipe's run differs: {', '.join(same.artifacts_differ)}"] if same.artifacts_differ else []
    problems += [f"the data stages differ: {', '.join(shared.artifacts_differ)}"] if shared.artifacts_differ else []
    problems += [f"{s} is the clean run's" for s in own if other["stages"][s]["artifact"] == _artifact(base, s)]
    problems += [f"{stage} does not verify" for stage in _unverified(store)]
    twice = [s for s in data if sum(r["stages"][s]["status"] == "executed" for r in records) > 1]
    detail = f"two recipes sharing {len(data)} data stages in {wall_s:.0f} s; built twice: {', '.join(twice) or 'none'}"
    lost, duplicated = same.lost + shared.lost, same.duplicated + shared.duplicated
    return TrialResult(Fault.CONCURRENT_RUNS, not problems and not (lost or duplicated), lost, duplicated, wall_s,
                       detail="; ".join([detail, *problems]))  # fmt: skip
