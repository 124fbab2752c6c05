"""What a run shows on the terminal: one progress bar per stage, and the quiet/verbose switch.

A ``Bar`` redraws in place (rich) when stderr is a terminal (and not verbose); elsewhere (pipes, CI, a test, a Prefect
worker's log) it logs a few lines: when it starts, at every quarter and when it ends, never one per update.
Those lines go through the ``bard_pipeline.infra.progress`` logger, so a Prefect run also shows them in its UI logs.

``bard run`` is quiet unless ``--verbose``: Ray's worker output and its libraries' chatter stay in the Ray
session's log folder (see ``bard_pipeline.infra.ray_runtime``); ``verbose()`` is how the adapters read the switch.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)
# Progress lines are INFO; the other `infra` loggers stay at the root's WARNING, so set this one explicitly.
log.setLevel(logging.INFO)

VERBOSE_ENV = "BARD_VERBOSE"
MILESTONES = (25, 50, 75)  # percent: the lines a bar logs between its start and its end when not on a terminal


def verbose() -> bool:
    """Whether Ray's own output should reach the terminal (``bard run --verbose``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure_terminal(on: bool) -> None:
    """Set the verbose switch for this process (and the Ray workers it starts, which inherit the environment).

    Quiet also silences the libraries' own progress bars and deprecation notices (transformers, datasets):
    on a pipe each of their bars is a line of its own, and ours already says how far a stage is. Call it
    before Ray starts; the Hugging Face variables are read when ``huggingface_hub`` is imported."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"
    if on:
        return
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name, "1")
    if "transformers" in sys.modules:  # imported already: its bar switch was read then
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")


def on_terminal() -> bool:
    """Whether bars redraw in place: stderr (where the Prefect console logs too) is a terminal, and Ray's own
    output, with bars of its own, is not streamed there (``--verbose``)."""
    return sys.stderr.isatty() and not verbose()


def status(done: int, total: int | None, unit: str, elapsed_s: float, rate: float | None) -> str:
    """``120/700 steps (17%), 2.1 steps/s, ETA 4:41`` (the parts that are known)."""
    parts = [f"{done}/{total} {unit}" if total else f"{done} {unit}"]
    if total:
        parts[0] += f" ({100 * done // total}%)"
    if rate:
        parts.append(f"{_number(rate)} {unit}/s")
        if total and done < total:
            parts.append(f"ETA {_clock((total - done) / rate)}")
    if elapsed_s and (not total or done >= total):
        parts.append(f"in {_clock(elapsed_s)}")
    return ", ".join(parts)


def _number(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Bar:
    """One stage's progress (``update`` with the absolute count); use it as a context manager.

    ``live`` forces the in-place bar (True) or the milestone lines (False); by default it follows
    ``on_terminal()``. The rate is measured from the first count known: 0 at the start when the total is
    given, else the first update, so a stage resuming from a checkpoint (starting at step 400 of 700) shows
    the speed of this attempt, not 400 steps in the first second."""

    def __init__(self, label: str, total: int | None, unit: str, live: bool | None = None) -> None:
        self.label, self.total, self.unit = label, total or None, unit
        self.done = 0
        self._t0 = time.perf_counter()
        self._first: tuple[float, int] | None = (self._t0, 0) if total else None  # the rate's baseline
        self._logged: set[int] = set()  # milestones already logged
        self._started = False
        self._live = _LiveBar(label) if (on_terminal() if live is None else live) else None
        self._start_line()

    def update(self, done: int, total: int | None = None) -> None:
        if total:
            self.total = total
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, done)
        self.done = done
        self._start_line()
        if self._live is not None:
            self._live.show(self.done, self.total, self._status(now))
            return
        if not self.total:
            return
        reached = [m for m in MILESTONES if m not in self._logged and 100 * done >= m * self.total]
        if reached and done < self.total:
            self._logged.update(reached)
            log.info("%s: %s", self.label, self._status(now))

    def close(self, stopped: bool = False) -> None:
        line = ("stopped at " if stopped else "") + self._status(time.perf_counter(), final=True)
        if self._live is not None:
            self._live.stop(self.done, self.total, line)
        else:
            log.info("%s: %s", self.label, line)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(stopped=kind is not None)

    def _start_line(self) -> None:
        if self._started or self._live is not None or not self.total:
            return
        self._started = True
        self._logged.update(m for m in MILESTONES if 100 * self.done >= m * self.total)  # passed before the start
        log.info("%s: %s", self.label, status(self.done, self.total, self.unit, 0.0, None))

    def _rate(self, now: float) -> float | None:
        if self._first is None or now <= self._first[0] or self.done <= self._first[1]:
            return None
        return (self.done - self._first[1]) / (now - self._first[0])

    def _status(self, now: float, final: bool = False) -> str:
        rate = self._rate(now)
        if final and rate is None and self.done and now > self._t0:
            rate = self.done / (now - self._t0)  # a stage that finished in one update
        return status(self.done, self.total, self.unit, now - self._t0 if final else 0.0, rate)


class _LiveBar:
    """The in-place bar, drawn on the console the Prefect log handler prints to when there is one, so that
    log lines arriving meanwhile print above the bar instead of through it."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            # Explicit styles: Prefect's console has a theme of its own, without rich's `bar.*` styles.
            BarColumn(style="grey39", complete_style="green", finished_style="green", pulse_style="green"),
            TextColumn("{task.fields[status]}"),
            console=_log_console(),
            refresh_per_second=2,
        )
        self._task = self._progress.add_task(label, total=None, status="starting")
        self._progress.start()

    def show(self, done: int, total: int | None, line: str) -> None:
        self._progress.update(self._task, completed=done, total=total, status=line)

    def stop(self, done: int, total: int | None, line: str) -> None:
        self.show(done, total, line)
        self._progress.stop()


def _log_console() -> Any:
    """The rich console of a root logging handler (Prefect's console handler has one), else stderr's."""
    from rich.console import Console

    for handler in logging.getLogger().handlers:
        console = getattr(handler, "console", None)
        if isinstance(console, Console):
            return console
    return Console(stderr=True)
