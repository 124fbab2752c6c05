"""The stage bar off a terminal (a few lines, never one per update) and the quiet/verbose switch."""

from __future__ import annotations

import itertools
import logging
import os
import warnings

import pytest

from bard_core.config import RayConfig
from bard_pipeline.infra import progress
from bard_pipeline.infra.progress import Bar, configure_terminal, status, verbose
from bard_pipeline.infra.ray_runtime import init_options


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bard_pipeline.infra.progress"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reading of the clock is one second later."""
    ticks = itertools.count()
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(ticks)))


@pytest.mark.usefixtures("clock")
def test_off_a_terminal_a_bar_logs_start_quarters_and_end_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bard_pipeline.infra.progress")
    with Bar("sample traces", 1000, "rows", live=False) as bar:
        for done in range(0, 1001, 10):  # 101 updates
            bar.update(done)
    lines = _lines(caplog)
    assert len(lines) == 5, lines
    assert lines[0] == "sample traces: 0/1000 rows (0%)"
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines[1:4]] == [
        "250/1000 rows",
        "500/1000 rows",
        "750/1000 rows",
    ]
    # 10 rows an update and a second between clock readings: 500 rows at the 51st reading after the start
    assert lines[2] == "sample traces: 500/1000 rows (50%), 9.80 rows/s, ETA 0:51"
    assert lines[4].startswith("sample traces: 1000/1000 rows (100%)") and " in " in lines[4]


@pytest.mark.usefixtures("clock")
def test_a_steps_bar_starts_when_the_total_is_known(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bard_pipeline.infra.progress")
    with Bar("sft", None, "steps", live=False) as bar:
        bar.update(0, 0)  # the worker has not reported yet
        for step in range(400, 701, 50):  # resumed at step 400 of 700
            bar.update(step, 700)
    lines = _lines(caplog)
    assert lines[0] == "sft: 400/700 steps (57%)"
    assert lines[1].startswith("sft: 550/700 steps (78%)")  # the 75 % mark; 50 % was passed before the start
    assert lines[-1].startswith("sft: 700/700 steps (100%)") and len(lines) == 3


def test_on_a_terminal_the_bar_draws_in_place_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bard_pipeline.infra.progress")
    with Bar("compress tiers", 10, "rows", live=True) as bar:
        for done in range(11):
            bar.update(done)
    assert _lines(caplog) == []


def test_status_formats_rate_and_eta() -> None:
    assert status(120, 700, "steps", 0.0, 2.0) == "120/700 steps (17%), 2.00 steps/s, ETA 4:50"
    assert status(700, 700, "steps", 3725.0, 2.0) == "700/700 steps (100%), 2.00 steps/s, in 1:02:05"
    assert status(5, None, "rows", 0.0, None) == "5 rows"


def test_verbose_switch_decides_what_ray_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (progress.VERBOSE_ENV, "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "")  # recorded, so the test leaves the environment as it found it
        monkeypatch.delenv(name)
    assert not verbose()  # quiet unless asked
    with warnings.catch_warnings():  # configure_terminal filters transformers' FutureWarnings
        configure_terminal(True)
        assert verbose() and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
        configure_terminal(False)
        assert not verbose() and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    local, cluster = RayConfig(num_cpus=2), RayConfig(address="auto")
    assert init_options(local, loud=False)["log_to_driver"] is False
    assert init_options(local, loud=True)["log_to_driver"] is True
    assert init_options(cluster, loud=False) == {"address": "auto", "log_to_driver": False}
    assert init_options(cluster, loud=True)["log_to_driver"] is True


def test_a_cluster_on_loopback_is_joined_from_loopback() -> None:
    """Without `_node_ip_address` the driver advertised the host's public address to a cluster listening on
    127.0.0.1 only, and the GCS connection retried forever (found by the chaos campaign's lost-node trial)."""
    joined = init_options(RayConfig(address="127.0.0.1:6380"), loud=False)
    assert joined["_node_ip_address"] == "127.0.0.1"
    assert "_node_ip_address" not in init_options(RayConfig(address="10.0.0.5:6380"), loud=False)
    assert "_node_ip_address" not in init_options(RayConfig(address="auto"), loud=False)
