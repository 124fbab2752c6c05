"""The chaos trials' reference in tests: the session's smoke run (tests/conftest.py), which every trial reruns with
the same recipe, overrides and environment, so its artifacts have the same fingerprints."""

from __future__ import annotations

from bard_pipeline.chaos.drivers import CleanRun
from tests.conftest import SmokeRun
from tests.support.flows import SMOKE


def clean_run(smoke_run: SmokeRun, until: str | None) -> CleanRun:
    """The smoke run as a trial's reference; trials stop after ``until`` (None: run every stage)."""
    env = {"BARD_NATIVE_BF16": "0", "BARD_CACHE_DIR": str(smoke_run.root / "cache")}  # as the smoke run had
    clean = CleanRun.of(smoke_run.root / "store", env, until)
    assert clean.recipe == SMOKE, clean.recipe
    return clean
