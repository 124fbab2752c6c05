"""One short trial of each fault the chaos campaign injects into a real `bard run` (benchmarks/chaos.py runs the
long campaign): the driver SIGKILLed mid-stage, the store's disk full, a committed file corrupted, three runs of
one recipe at once. Each trial's rows are checked against the session's smoke run. The whole-run trials the
campaign repeats anyway are marked ``campaign`` and left out of a plain ``pytest`` (CI's time budget);
``pytest -m campaign`` runs them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bard_pipeline.chaos.drivers import CleanRun, concurrent_runs, killed_driver, shared_data_runs
from bard_pipeline.chaos.report import TrialResult
from bard_pipeline.chaos.storage import MountError, corruption, full_disk, tmpfs

pytestmark = pytest.mark.slow


def _survived(result: TrialResult) -> None:
    assert result.survived, result.detail
    assert (result.rows_lost, result.rows_duplicated) == (0, 0), result


def test_a_driver_killed_mid_sample_reruns_to_the_clean_rows_reusing_its_shards(
    clean_data: CleanRun, tmp_path: Path
) -> None:
    """Killed as soon as a shard is written (small shards, so that most are still to do; shard sizes are
    execution-only, so the fingerprints are the clean run's); the rerun adopts the finished ones."""
    small = ("sample.shard_rows=10",)
    result = killed_driver(clean_data, "sample", tmp_path, random.Random(1), "shard", small)
    _survived(result)
    assert "shards reused" in result.detail, result.detail


# The campaign's killed-driver sft trials; in CI: the mid-sample kill above, and tests/flows/test_training.py
# resumes training after a killed worker.
@pytest.mark.campaign
def test_a_driver_killed_mid_sft_resumes_from_its_checkpoint(clean_sft: CleanRun, tmp_path: Path) -> None:
    result = killed_driver(clean_sft, "sft", tmp_path, random.Random(3), trigger="checkpoint")
    _survived(result)
    assert "resumed from the checkpoint" in result.detail, result.detail


def test_a_corrupted_shard_is_found_removed_and_rebuilt(clean_data: CleanRun, tmp_path: Path) -> None:
    _survived(corruption(clean_data, "sample", tmp_path, random.Random(5)))


def _can_mount(tmp_path: Path) -> bool:
    try:
        with tmpfs(tmp_path / "probe", 1 << 20):
            return True
    except MountError:
        return False


@pytest.mark.campaign  # the campaign's full-disk fault (tests/infra/test_store.py fills a real tmpfs in CI)
def test_a_full_store_disk_fails_naming_it_and_the_rerun_completes(clean_data: CleanRun, tmp_path: Path) -> None:
    if not _can_mount(tmp_path):
        pytest.skip("mounting a tmpfs needs root")
    _survived(full_disk(clean_data, "compress", tmp_path))


@pytest.mark.campaign  # the campaign's concurrent-runs fault (tests/infra/test_store.py races two writers in CI)
def test_three_identical_runs_on_one_store_agree(clean_data: CleanRun, tmp_path: Path) -> None:
    _survived(concurrent_runs(clean_data, tmp_path, copies=3))


@pytest.mark.campaign  # the campaign's second concurrent-runs trial
def test_two_recipes_sharing_the_data_stages_run_at_once(clean_sft: CleanRun, tmp_path: Path) -> None:
    result = shared_data_runs(clean_sft, tmp_path)
    _survived(result)
    assert "two recipes sharing" in result.detail, result.detail
