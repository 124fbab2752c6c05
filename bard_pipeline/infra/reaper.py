"""What a killed driver leaves behind is cleaned up: its child processes and its temporary files.

``bard run`` starts processes of its own: the ephemeral Prefect server, a local Ray runtime (GCS, raylet, the
workers) and whatever those start. A driver stopped by a signal it can handle stops them; one killed outright
(SIGKILL, the OOM killer, a lost container) cannot, and they kept running, orphaned, with their ports: the
ephemeral Prefect server of a driver SIGKILLed mid-SFT was found alive hours later. ``guard()`` starts a
small watcher process, outside the driver's process group, that keeps a list of the driver's descendants and,
once the driver is gone, ends those still running (SIGTERM, then SIGKILL after ``grace_s``) and removes the
driver's temporary folder, which every process of the run uses as ``TMPDIR``.

    python -m bard_pipeline.infra.reaper DRIVER_PID SCRATCH_DIR   # what guard() starts
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

POLL_S = 0.5
GRACE_S = 10.0
SYSTEM_TMP_ENV = "BARD_SYSTEM_TMPDIR"  # the temp folder before guard() pointed TMPDIR at the run's own
SCRATCH_PREFIX = "bard-run-"
GUARDED_ENV = "BARD_GUARDED_PID"  # the process guard() watches


def system_tmp() -> Path:
    """The machine's temp folder, also inside a guarded run (where ``TMPDIR`` is the run's scratch): for what
    must outlive the run, such as Ray's session logs."""
    return Path(os.environ.get(SYSTEM_TMP_ENV) or tempfile.gettempdir())


def guard() -> Path:
    """Watch this process (a ``bard run`` driver): point ``TMPDIR`` at a scratch folder of its own and start
    the watcher that cleans up after it. Returns the scratch folder. Calling it again in the same process
    does nothing more."""
    if os.environ.get(GUARDED_ENV) == str(os.getpid()):  # a child inherits the variables, not the guard
        return Path(tempfile.gettempdir())
    base = system_tmp()  # a guarded driver's child (a `bard run` started by a test) nests nothing in its scratch
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base))
    subprocess.Popen(
        [sys.executable, "-m", "bard_pipeline.infra.reaper", str(os.getpid()), str(scratch)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the driver's group must not take the watcher with it
        close_fds=True,
    )
    os.environ[SYSTEM_TMP_ENV] = str(base)
    os.environ[GUARDED_ENV] = str(os.getpid())
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)
    return scratch


def _descendants(driver: psutil.Process) -> dict[int, psutil.Process]:
    """The driver's processes, less this watcher (which the driver started, so it is one of them)."""
    try:
        return {p.pid: p for p in driver.children(recursive=True) if p.pid != os.getpid()}
    except psutil.Error:
        return {}


def _stop(processes: list[psutil.Process], grace_s: float) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace_s``. ``psutil.Process`` remembers its creation
    time, so a PID reused by another program meanwhile is not touched."""
    alive = [p for p in processes if p.is_running()]
    for process in alive:
        try:
            process.terminate()
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue


def watch(driver_pid: int, scratch: Path, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> None:
    """Until ``driver_pid`` exits, remember its descendants; then stop those left and remove ``scratch``.

    A descendant seen once is remembered even after it is re-parented (an orphan's parent becomes init, so
    it would drop out of a fresh listing exactly when it matters)."""
    seen: dict[int, psutil.Process] = {}
    try:
        driver = psutil.Process(driver_pid)
        while driver.status() != psutil.STATUS_ZOMBIE:  # raises NoSuchProcess once it is gone
            for pid, process in _descendants(driver).items():
                seen.setdefault(pid, process)
            time.sleep(poll_s)
    except psutil.NoSuchProcess:
        pass
    for process in list(seen.values()):  # children of the orphans started since the last poll
        if process.is_running():
            seen.update(_descendants(process))
    _stop(list(seen.values()), grace_s)
    if scratch.name.startswith(SCRATCH_PREFIX):  # never remove a folder this module did not create
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]))
