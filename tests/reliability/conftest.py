"""The short chaos suite's references (tests/support/chaos.py): the session's smoke run, cut after a stage."""

from __future__ import annotations

import pytest

from bard_pipeline.chaos.drivers import CleanRun
from tests.conftest import SmokeRun
from tests.support.chaos import clean_run


@pytest.fixture(scope="session")
def clean_data(smoke_run: SmokeRun) -> CleanRun:
    """Trials that stop after materialize (the data stages: sample, compress, their shards)."""
    return clean_run(smoke_run, "materialize")


@pytest.fixture(scope="session")
def clean_sft(smoke_run: SmokeRun) -> CleanRun:
    """Trials that stop after sft (its checkpoints)."""
    return clean_run(smoke_run, "sft")
