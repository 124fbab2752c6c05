"""The Ray runtime of a run, started lazily (a run whose stages are all skipped never starts Ray)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from bard_core.config import RayConfig

log = logging.getLogger(__name__)


class RaySession:
    """Joins the configured cluster, or starts a private local runtime, on first ``ensure()``."""

    def __init__(self, cfg: RayConfig) -> None:
        self.cfg = cfg
        self._started_here = False

    def ensure(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self.cfg.address:
            log.info("joining Ray cluster at %s", self.cfg.address)
            ray.init(address=self.cfg.address, log_to_driver=True)
        else:
            # Keep every Ray listener on 127.0.0.1: without this Ray binds the host's public interface.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            # A private loopback runtime needs no token (which Ray would write to the home directory).
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            temp_dir = Path(self.cfg.temp_dir or Path(tempfile.gettempdir()) / "bard-ray").resolve()
            log.info("starting a local Ray runtime (num_cpus=%s, temp_dir=%s)", self.cfg.num_cpus, temp_dir)
            ray.init(
                num_cpus=self.cfg.num_cpus,
                include_dashboard=False,
                _temp_dir=str(temp_dir),
                log_to_driver=True,
                configure_logging=True,
                logging_level=logging.WARNING,
            )
        self._started_here = True

    def shutdown(self) -> None:
        if not self._started_here:
            return
        import ray

        ray.shutdown()
        self._started_here = False
