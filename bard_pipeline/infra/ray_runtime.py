"""The Ray runtime of a run, started lazily (a run whose stages are all skipped never starts Ray).

Unless the run is verbose (``bard run --verbose``), Ray's own output stays in the session's log folder,
which is announced once: workers' stdout/stderr (Ray Train's controller and placement-group cleaner, the
libraries inside the workers) are not streamed to the driver. Our warnings are logged on the driver, so
they still show.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bard_core.config import RayConfig
from bard_pipeline.infra import progress
from bard_pipeline.infra.reaper import system_tmp

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost")
RAY_DATA_DRAIN_S = 20.0  # how long shutdown waits for Ray Data's executors to finish (seconds)
RAY_DATA_EXECUTOR = "ray.data._internal.execution.streaming_executor.StreamingExecutor"  # a Thread subclass


def init_options(cfg: RayConfig, loud: bool) -> dict[str, Any]:
    """The ``ray.init`` arguments for this config; ``loud`` streams every worker's output to the terminal."""
    if cfg.address:
        options: dict[str, Any] = {"address": cfg.address, "log_to_driver": loud}
        if on_loopback(cfg.address):
            # Joining a cluster on this host's loopback: without this the driver advertises the host's public
            # address, where the cluster's nodes do not listen (the GCS connection then retries forever).
            options["_node_ip_address"] = "127.0.0.1"
        return options
    temp_dir = Path(cfg.temp_dir or system_tmp() / "bard-ray").resolve()  # outlives the run: its logs
    return {
        "num_cpus": cfg.num_cpus,
        "include_dashboard": False,
        "_temp_dir": str(temp_dir),
        "log_to_driver": loud,
        "configure_logging": True,
        "logging_level": logging.INFO if loud else logging.WARNING,
    }


def on_loopback(address: str) -> bool:
    """Whether a Ray address (``[ray://]host:port``) is on this host's loopback."""
    return address.split("://")[-1].rsplit(":", 1)[0] in LOOPBACK


class RaySession:
    """Joins the configured cluster, or starts a private local runtime, on first ``ensure()``."""

    def __init__(self, cfg: RayConfig) -> None:
        self.cfg = cfg
        self._started_here = False

    def ensure(self) -> None:
        if self.cfg.address and on_loopback(self.cfg.address):
            # Ray turns a loopback address into the host's public one (where a loopback cluster does not
            # listen) unless this is set, and reads it once, when it is first imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        if ray.is_initialized():
            return
        loud = progress.verbose()
        options = init_options(self.cfg, loud)
        if self.cfg.address:
            log.info("joining Ray cluster at %s", self.cfg.address)
        else:
            # Keep every Ray listener on 127.0.0.1: without this Ray binds the host's public interface.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            # A private loopback runtime needs no token (which Ray would write to the home directory).
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # Ray starts its workers 15 nice levels below the driver (at 19 from a `nice -n 10` driver), so the
            # actors that do a stage's work lost the CPU to everything else on a shared machine, Ray's own
            # processes included: the same generation ran at a fraction of the driver's speed. Workers run at
            # the driver's priority.
            os.environ.setdefault("RAY_worker_niceness", "0")
            log.info("starting a local Ray runtime (num_cpus=%s, temp_dir=%s)", self.cfg.num_cpus, options["_temp_dir"])
        context = ray.init(**options)
        self._started_here = True
        logs = Path(context.address_info["session_dir"]) / "logs"
        if not loud:
            _spend_constructor_args_warning(logs)
        hint = "" if loud else " (`bard run --verbose` streams them here)"
        progress.log.info("Ray logs: %s%s", logs, hint)

    def shutdown(self) -> None:
        if not self._started_here:
            return
        import ray

        drain_ray_data()
        ray.shutdown()
        self._started_here = False


def ray_data_executors() -> list[threading.Thread]:
    """Live scheduling loops of Ray Data's streaming executors in this process (each a ``Thread`` subclass).
    Not the helpers an iteration leaves waiting on their queues for as long as it lives (block and metadata
    prefetch): they make no call into Ray while idle."""
    current = threading.current_thread()
    return [
        t
        for t in threading.enumerate()
        if t is not current and t.is_alive() and f"{type(t).__module__}.{type(t).__name__}" == RAY_DATA_EXECUTOR
    ]


def drain_ray_data(timeout_s: float = RAY_DATA_DRAIN_S) -> None:
    """Let Ray Data finish before ``ray.shutdown()``: a thread that calls into Ray after the shutdown finds the
    core worker gone, and Ray then ends the whole process ("The core worker has already been shutdown ... The
    process will exit": a notebook's kernel, a pytest worker; seen in CI right after a run whose actor-pool actor
    was restarted). A finished iteration's executor waits only 2 s for its scheduling loop, and objects holding
    Ray references are freed by the garbage collector in whichever thread it runs: collect now, while Ray is up,
    then wait for the executors still running."""
    gc.collect()
    deadline = time.monotonic() + timeout_s
    for thread in ray_data_executors():
        thread.join(max(0.0, deadline - time.monotonic()))
    if left := ray_data_executors():
        log.warning("Ray Data executors still running after %.0f s: %s", timeout_s, ", ".join(t.name for t in left))


class _Spent:
    """An actor that is never used: see ``_spend_constructor_args_warning``."""

    def __init__(self, arg: Any) -> None:
        self.arg = arg


def _spend_constructor_args_warning(logs: Path) -> None:
    """Ray's driver writes, once per process and at ERROR level straight to stderr (C++, not Python logging),
    that an actor with constructor arguments in the object store and restarts enabled may fail to restart
    (ray-project/ray#53727). Every Ray Data actor pool qualifies (Ray Data puts the UDF in the object store
    and restarts dead actors, which our pools rely on), so every run printed an ERROR though nothing failed.
    Creating one such actor while file descriptor 2 points into the session's log folder spends that once
    there; the redirect lasts only for the submission of that actor."""
    import ray

    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(logs / "driver-stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 2)
        actor = ray.remote(num_cpus=0, max_restarts=1)(_Spent).remote(ray.put(None))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)
    ray.kill(actor)
