"""Running ``bard run`` the way a user does (a process of its own, its own ephemeral Prefect server and Ray
runtime), watching it, killing it, and checking what it left: the run record, the store, stray processes.

A trial's runs write their output to a log file each; the campaign's terminal shows only the table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bard_pipeline.chaos.rows import RunRows, run_rows
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

RUN_TIMEOUT_S = 1800.0
NOT_INHERITED = frozenset({"PREFECT_API_URL", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "BARD_GUARDED_PID"})


class TrialError(RuntimeError):
    """A trial could not be carried out as planned (the run finished before the fault could be injected)."""


@dataclass(frozen=True)
class Launch:
    """One ``bard run`` of a recipe on a store, with its log and environment."""

    recipe: str
    store_root: str
    log: Path
    overrides: Sequence[str] = ()
    env: Mapping[str, str] | None = None  # added to this process's environment
    until: str | None = None  # `bard run --until`: the last stage (short trials stop after materialize)

    def argv(self) -> list[str]:
        until = ["--until", self.until] if self.until else []
        return [sys.executable, "-m", "bard_pipeline.flows.cli", "run", self.recipe,
                f"store.root={self.store_root}", *self.overrides, *until]  # fmt: skip

    def start(self) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log.open("ab")
        # Its own ephemeral Prefect server, as `bard run` on a laptop, unless the trial's env names an API; and
        # none of the settings this process's own Ray runtime may have put in its environment.
        inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        env = {**inherited, **(self.env or {}), "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        # A session of its own: the trial kills the driver alone, as a crash would, never the campaign.
        return subprocess.Popen(self.argv(), stdout=handle, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip

    def run(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        proc = self.start()
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            raise

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.is_file() else ""


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (the campaign's own cleanup, never a fault)."""
    for process in [*descendants(pid), *_self(pid)]:
        try:
            process.kill()
        except psutil.Error:
            continue


def _self(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid)]
    except psutil.Error:
        return []


def sigkill(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """SIGKILL the driver only, as the OOM killer would; returns its descendants at that moment."""
    left = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return left


def wait_for(proc: subprocess.Popen[bytes], log: Path, marker: str, timeout_s: float = RUN_TIMEOUT_S) -> float:
    """Block until ``marker`` appears in the run's log; returns the time it took. Raises ``TrialError`` if the
    run ends first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if marker in log.read_text(encoding="utf-8", errors="replace"):
            return time.monotonic() - t0
        if proc.poll() is not None:
            raise TrialError(f"the run ended (exit {proc.returncode}) before {marker!r} appeared in {log}")
        time.sleep(0.2)
    raise TrialError(f"{marker!r} did not appear in {log} within {timeout_s:.0f} s")


def still_alive(processes: Sequence[psutil.Process], wait_s: float = 20.0) -> list[str]:
    """Those of ``processes`` still running after ``wait_s`` (the reaper's grace included), described."""
    deadline = time.monotonic() + wait_s
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return [f"{p.pid} {' '.join(_cmdline(p))[:120]}" for p in alive]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return ["?"]


def latest_record(store: ArtifactStore) -> dict[str, Any]:
    runs = [r for r in store.list_runs() if r.get("status") == "completed"]
    if not runs:
        raise TrialError(f"no completed run recorded in {store.root}")
    return runs[-1]


def completed_rows(store: ArtifactStore) -> RunRows:
    """The rows of the newest completed run in ``store``, every artifact checksum-verified on the way."""
    record = latest_record(store)
    for info in record["stages"].values():
        problems = store.verify(ArtifactRef.parse(info["artifact"]))
        if problems:
            raise TrialError(f"{info['artifact']} does not verify: {problems[0]}")
    return run_rows(store, record)


def store_scratch(store_dir: Path) -> list[str]:
    """What a local store holds besides committed artifacts: temp files of interrupted writes, training
    scratch of runs in progress."""
    leftovers = [str(p.relative_to(store_dir)) for p in store_dir.rglob("*.tmp-*")]
    scratch = store_dir / "_scratch" / "ray_train"
    leftovers += [str(p.relative_to(store_dir)) for p in scratch.iterdir()] if scratch.is_dir() else []
    return sorted(leftovers)
