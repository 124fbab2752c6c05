"""Test-only fault switches, in one place: environment variables that make a stage fail, an engine actor
die, or a training worker die, so that the tests (and a person following the README) can check retries,
resumption and recovery on a real run. Unset, every switch does nothing.

- ``BARD_FAIL_STAGE=STAGE[:after_shards=N]``: the stage raises before any work, or after N shards.
- ``BARD_FAIL_STAGE_FILE=PATH``: the same spec read from a file, which disarms itself (see ``maybe_fail``).
- ``BARD_KILL_ACTOR_ONCE=MARKER``: the first actor-pool actor to reach its second batch SIGKILLs itself once.
- ``BARD_KILL_TRAIN_WORKER_AT_STEP=STEP:MARKER``: rank 0 of a Ray Train loop SIGKILLs itself once at STEP.

The kill switches create their marker file atomically, so only one process fires, once per marker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

FAIL_ENV = "BARD_FAIL_STAGE"
FAIL_FILE_ENV = "BARD_FAIL_STAGE_FILE"
KILL_ACTOR_ENV = "BARD_KILL_ACTOR_ONCE"
KILL_TRAIN_ENV = "BARD_KILL_TRAIN_WORKER_AT_STEP"


class InjectedFailureError(RuntimeError):
    """Raised by the test-only fault switch (``BARD_FAIL_STAGE``)."""


def maybe_fail(stage: str, shards_done: int | None) -> None:
    """``BARD_FAIL_STAGE=compress`` fails before any work, ``...:after_shards=N`` after N shards.
    ``BARD_FAIL_STAGE_FILE=PATH``: the spec read from a file instead, as ``STAGE[:after_shards=N] [TIMES]``;
    it fires TIMES times (default 1), then deletes itself, so a long-running serve process can be armed for
    one run (TIMES covering the task's own retries) and a later retry succeeds."""
    value, armed = os.environ.get(FAIL_ENV, ""), Path(os.environ.get(FAIL_FILE_ENV) or "/nonexistent")
    times = None
    if armed.is_file():
        value, _, count = armed.read_text(encoding="utf-8").strip().partition(" ")
        times = int(count or 1)
    name, _, option = value.partition(":")
    if name != stage:
        return
    after = int(option.split("=", 1)[1]) if option.startswith("after_shards=") else None
    if (after is None and shards_done is None) or (after is not None and shards_done == after):
        if times is not None and times > 1:
            armed.write_text(f"{value} {times - 1}", encoding="utf-8")
        elif times is not None:
            armed.unlink()
        raise InjectedFailureError(f"{FAIL_ENV}={value}: injected failure in stage {stage!r}")


def _first_claim(marker: str) -> bool:
    """Create ``marker``; False when it already exists (the switch has fired)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def maybe_kill_actor(batches: int) -> None:
    """An actor-pool actor on its second batch dies (SIGKILL) once, when ``BARD_KILL_ACTOR_ONCE`` names a
    marker file that does not exist yet."""
    marker = os.environ.get(KILL_ACTOR_ENV)
    if marker and batches == 2 and _first_claim(marker):
        os.kill(os.getpid(), signal.SIGKILL)


class KillOnce:
    """TrainerCallback body: SIGKILL rank 0 once at a given step (a worker lost mid-training)."""

    def __init__(self, spec: str) -> None:
        step, _, marker = spec.partition(":")
        self.step, self.marker = int(step), marker

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != self.step or not state.is_world_process_zero or not _first_claim(self.marker):
            return
        # Ray Train's controller collects reported checkpoints by polling the workers; a worker dying
        # within milliseconds of a report can take that report with it. Lose the worker a little later,
        # as a real failure would, so the test checks resuming rather than the polling race.
        time.sleep(5.0)
        os.kill(os.getpid(), signal.SIGKILL)


def train_kill_callback(base: type) -> Any | None:
    """The kill callback as a ``base`` (transformers' TrainerCallback) when ``BARD_KILL_TRAIN_WORKER_AT_STEP``
    is set, else None; ``base`` is passed in so this module imports no training framework."""
    spec = os.environ.get(KILL_TRAIN_ENV)
    return type("KillOnce", (KillOnce, base), {})(spec) if spec else None
