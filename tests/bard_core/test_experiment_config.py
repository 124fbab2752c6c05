"""Experiment files: every shipped one resolves arm by arm; arms differ only where they mean to; a grid whose
arms would not be evaluated alike, or whose arm does not evaluate its series, is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.config.experiment import ArmConfig, ExperimentConfig
from bard_core.experiment import load_experiment, paired_settings, resolve_arms
from bard_core.recipes import ConfigError
from bard_core.schemas import EvalMode
from tests.conftest import CONFIGS

EXPERIMENTS = sorted((CONFIGS / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_resolves_every_arm(path: Path) -> None:
    experiment = load_experiment(path)
    configs = resolve_arms(experiment)
    assert list(configs) == list(experiment.arms)
    assert len({str(paired_settings(c)) for c in configs.values()}) == 1  # one evaluation setting for all


@pytest.mark.parametrize("name", ["bard-claims.yaml", "bard-claims-gpu.yaml"])
def test_the_claims_experiments_have_the_issue_arms(name: str) -> None:
    experiment = load_experiment(CONFIGS / "experiments" / name)
    assert set(experiment.arms) == {
        "bard", "sft_only", "rl_only", "additive", "agnostic_truncated", "agnostic_prompted", "base_truncated",
    }  # fmt: skip
    assert experiment.base == ("toy" if name == "bard-claims.yaml" else "gpu-qwq-qwen3-8b")


def _differ(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return sorted(k for k in a if a[k] != b[k])


def test_arms_differ_only_where_they_mean_to() -> None:
    experiment = load_experiment(CONFIGS / "experiments" / "bard-claims.yaml")
    configs = {name: cfg.fingerprint_dump() for name, cfg in resolve_arms(experiment).items()}
    bard = configs["bard"]
    assert _differ(bard, configs["additive"]) == ["rl"]  # the reward only: same SFT, same evaluation settings
    assert _differ(bard, configs["rl_only"]) == ["rl"]
    assert _differ(bard, configs["sft_only"]) == ["evaluate"]  # same data and SFT: shared artifacts
    assert _differ(configs["agnostic_truncated"], configs["agnostic_prompted"]) == []  # one evaluation serves both
    assert _differ(bard, configs["agnostic_truncated"]) == ["evaluate", "materialize"]
    assert configs["agnostic_truncated"]["materialize"]["budget_conditioning"] is False


def _experiment(arms: dict[str, dict[str, object]], **extra: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"name": "t", "base": str(CONFIGS / "smoke.yaml"), "arms": arms, **extra})


def test_arms_evaluated_differently_are_refused() -> None:
    experiment = _experiment(
        {"bard": {"series": "rl"}, "other": {"series": "sft", "overrides": ["evaluate.samples_per_problem=3"]}}
    )
    with pytest.raises(ConfigError, match=r"arm 'other' is not evaluated like arm 'bard': sampling differ"):
        resolve_arms(experiment)


def test_an_arm_whose_series_is_not_evaluated_is_refused() -> None:
    experiment = _experiment({"bard": {"series": "rl", "overrides": ["evaluate.models=[sft]"]}})
    with pytest.raises(ConfigError, match=r"arm 'bard': its series 'rl' is not evaluated"):
        resolve_arms(experiment)
    with pytest.raises(ConfigError, match=r"(?s)arm .bard.: .*Did you mean .reward."):
        resolve_arms(_experiment({"bard": {"overrides": ["rl.rewrd=additive"]}}))


def test_claims_and_reference_must_name_arms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown arm\(s\) \['nope'\]"):
        _experiment({"bard": {}}, claims=[{"kind": "beats", "arm": "bard", "other": "nope"}])
    with pytest.raises(ValueError, match="set `other`"):
        _experiment({"bard": {}}, claims=[{"kind": "beats", "arm": "bard"}])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nbase: configs/smoke.yaml\narms: {bard: {series: 'cut(sft'}}\n")
    with pytest.raises(ConfigError, match=r"arms\.bard\.series"):
        load_experiment(bad)


def test_a_series_names_its_model_and_mode() -> None:
    assert (ArmConfig(series="truncated(sft)").model, ArmConfig(series="truncated(sft)").mode) == (
        "sft",
        EvalMode.TRUNCATED,
    )
    assert (ArmConfig(series="rl").model, ArmConfig(series="rl").mode) == ("rl", EvalMode.BUDGET)
