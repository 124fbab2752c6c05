"""What a run trains: only the checkpoints its evaluation loads, and where RL starts (`rl.init`)."""

from __future__ import annotations

import pytest

from bard_core.recipes import load_config
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.training import needed_training, rl_start

BASE = ModelLocation("store:model/abc", None, "model/abc")


@pytest.mark.parametrize(
    ("overrides", "needed"),
    [
        ([], {"sft", "rl"}),  # base, sft and rl evaluated, the truncation baseline on sft
        (["evaluate.models=[rl]", "evaluate.truncation=null"], {"sft", "rl"}),  # RL starts from SFT
        (["evaluate.models=[rl]", "evaluate.truncation=null", "rl.init=base"], {"rl"}),
        (["evaluate.models=[sft]", "evaluate.truncation=null"], {"sft"}),
        (["evaluate.models=[]", "evaluate.truncation.model=base"], set()),
    ],
)
def test_a_run_that_evaluates_trains_what_its_evaluation_loads(overrides: list[str], needed: set[str]) -> None:
    assert needed_training(load_config(None, overrides), evaluates=True) == needed


def test_a_run_that_does_not_evaluate_trains_both() -> None:
    assert needed_training(load_config(None, ["evaluate.models=[sft]"]), evaluates=False) == {"sft", "rl"}


def test_rl_starts_from_sft_or_the_base_student() -> None:
    sft = ArtifactRef("sft", "f" * 20)
    assert rl_start(load_config(None), BASE, sft).location == "store:sft/" + "f" * 20
    assert rl_start(load_config(None, ["rl.init=base"]), BASE, None) == BASE
    with pytest.raises(ValueError, match="trained no SFT checkpoint"):
        rl_start(load_config(None), BASE, None)
