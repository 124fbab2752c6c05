"""Experiments as configs: read an experiment file, resolve every arm's run config, and refuse a grid whose
arms would not be comparable (different held-out problems, budgets, samples per problem or budget contract).

Paired comparisons per problem are valid only when every arm is evaluated on the same problems at the same
budgets with the same k and seed; ``paired_settings`` is what must agree, ``resolve_arms`` checks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bard_core.config import RunConfig
from bard_core.config.experiment import ArmConfig, ExperimentConfig
from bard_core.recipes import ConfigError, load_config, read_recipe
from bard_core.schemas import EvalMode


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file; errors say where and what to fix."""
    data = read_recipe(path)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"experiment {path}: {exc.error_count()} error(s)"]
        lines += [f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def arm_overrides(experiment: ExperimentConfig, arm: str, extra: Sequence[str] = ()) -> list[str]:
    """The overrides of one arm's run: the experiment's, the arm's, then the command line's."""
    return [*experiment.overrides, *experiment.arms[arm].overrides, *extra]


def paired_settings(cfg: RunConfig) -> dict[str, Any]:
    """What every arm's evaluation must share for per-problem paired comparisons to be valid."""
    ev = cfg.evaluate
    return {
        "store": cfg.store.fingerprint_dump(),  # arms share artifacts, and the report reads them, in one store
        "held-out problems (ingest)": cfg.ingest.fingerprint_dump(),
        "benchmarks": [b.fingerprint_dump() for b in ev.benchmarks],
        "budgets": list(ev.budgets_tokens or cfg.budget.tiers_tokens),
        "budget contract": cfg.budget.fingerprint_dump(),
        "student tokenizer": cfg.student.tokenizer.fingerprint_dump(),
        "sampling": [ev.samples_per_problem, ev.temperature, ev.top_p, ev.seed, ev.max_new_tokens_factor],
        "answer tokens": ev.answer_tokens,
        "bootstrap": [ev.bootstrap_samples, ev.confidence],
    }


def evaluates_series(cfg: RunConfig, arm: ArmConfig) -> bool:
    """Whether the run's evaluation produces the arm's series."""
    if arm.mode == EvalMode.TRUNCATED:
        return cfg.evaluate.truncation is not None and cfg.evaluate.truncation.model == arm.model
    return arm.model in cfg.evaluate.models


def resolve_arms(experiment: ExperimentConfig, extra: Sequence[str] = ()) -> dict[str, RunConfig]:
    """Every arm's run config, checked: each evaluates its series, and all evaluate alike."""
    configs: dict[str, RunConfig] = {}
    for name, arm in experiment.arms.items():
        try:
            cfg = load_config(experiment.base, arm_overrides(experiment, name, extra))
        except ConfigError as exc:
            raise ConfigError(f"arm {name!r}: {exc}") from None
        if not cfg.evaluate.enabled:
            raise ConfigError(f"arm {name!r}: evaluate.enabled is false; an arm is measured by its evaluation")
        if not evaluates_series(cfg, arm):
            truncated = cfg.evaluate.truncation.model if cfg.evaluate.truncation else None
            raise ConfigError(
                f"arm {name!r}: its series {arm.series!r} is not evaluated (evaluate.models="
                f"{list(cfg.evaluate.models)}, truncation={truncated}); add it to the arm's evaluate overrides"
            )
        configs[name] = cfg
    _check_paired(configs)
    return configs


def _check_paired(configs: Mapping[str, RunConfig]) -> None:
    names = list(configs)
    first = paired_settings(configs[names[0]])
    for name in names[1:]:
        other = paired_settings(configs[name])
        differ = [key for key in first if first[key] != other[key]]
        if differ:
            raise ConfigError(
                f"arm {name!r} is not evaluated like arm {names[0]!r}: {', '.join(differ)} differ; paired "
                "comparisons need the same held-out problems, budgets, k and seed (set them in the experiment's "
                "common overrides, not in an arm's)"
            )
