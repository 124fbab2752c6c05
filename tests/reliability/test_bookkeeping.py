"""The chaos campaign's bookkeeping: where a kill landed (``chaos.drivers.landed_in``, read from the killed
run's log as the trials do), the data stages of a run, a trial that raises, and the table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bard_pipeline.chaos.drivers import landed_in, stages_through
from bard_pipeline.chaos.rows import RunRows

LOG = """\
15:00:43.338 | INFO    | Task run 'sample-e28' - sample: building file:///store/sample/ee13
15:00:56.425 | INFO    | Task run 'sample-e28' - sample: committed sample/ee137f3db10f36b1a5d4 (traces=308)
15:00:56.496 | INFO    | Task run 'compress-4d4' - compress: building file:///store/compress/e904
"""


def test_a_kill_lands_in_the_stage_last_seen_building() -> None:
    assert landed_in(LOG) == "compress"  # aimed at sample, which had finished
    assert landed_in(LOG.rsplit("\n", 2)[0] + "\n") == "between stages"  # sample committed, nothing started yet
    assert landed_in(LOG.split("\n", 1)[0]) == "sample"


def test_the_table_counts_every_trial_and_times_only_the_survivors() -> None:
    from bard_pipeline.chaos.report import Fault, TrialResult, render

    results = [
        TrialResult(Fault.FLAKY_S3, False, detail="sample: nothing to lose"),  # ended before its fault: 0 s
        TrialResult(Fault.FLAKY_S3, True, recovery_s=66.0),
        TrialResult(Fault.KILLED_DRIVER, True, rows_duplicated=2, recovery_s=40.0),
    ]
    table = render(results)
    assert "| flaky S3 | 2 | 1 | 0 | 0 | 66.0 / 66.0 | sample: nothing to lose |" in table
    assert "| killed driver | 1 | 1 | 0 | 2 | 40.0 / 40.0 |  |" in table
    assert table.splitlines()[-1] == "trials=3 survived=2 failed=1 lost=0 duplicated=2 secret_hits=0"


def test_the_data_stages_are_found_by_their_stage_whatever_their_label() -> None:
    stages = ["tokenizer", "model:toy-student", "ingest", "sample", "compress", "materialize", "sft", "rl"]
    rows = RunRows({s: f"{s.split(':')[0]}/0" for s in stages}, {"sample:traces": Counter()})
    assert stages_through(rows, "materialize") == stages[:6]
    assert stages_through(rows, "model") == stages[:2]


def test_a_trial_that_raises_is_a_failed_trial_and_the_campaign_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bard_pipeline.chaos import campaign
    from bard_pipeline.chaos.drivers import CleanRun
    from bard_pipeline.chaos.report import Fault, TrialResult

    def broken(*_: object) -> Iterator[TrialResult]:
        yield TrialResult(Fault.CORRUPTION, True, recovery_s=1.0)
        raise ValueError("a harness bug")

    def fine(*_: object) -> Iterator[TrialResult]:
        yield TrialResult(Fault.BAD_INPUT, True)

    monkeypatch.setitem(campaign.RUNNERS, campaign.Fault.CORRUPTION, broken)
    monkeypatch.setitem(campaign.RUNNERS, campaign.Fault.BAD_INPUT, fine)
    clean = CleanRun("smoke.yaml", tmp_path, RunRows({}, {}), {})
    seen: list[TrialResult] = []
    faults = [campaign.Fault.CORRUPTION, campaign.Fault.BAD_INPUT]
    results = campaign.run_campaign(clean, faults, tmp_path, campaign.Plan(trials=3), seen.append)
    assert [r.survived for r in results] == [True, False, True] and seen == results
    assert results[1].fault is Fault.CORRUPTION
    assert "ValueError: a harness bug" in results[1].detail
