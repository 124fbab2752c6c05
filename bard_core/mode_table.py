"""The effort-mode table of an evaluation: per (model, benchmark) and effort mode (``budget.modes``), the
mean reasoning length, its reduction against mode ``high``, accuracy, and the accuracy change against
``high`` with a paired bootstrap interval (schema ``schemas.MODES``).

A tier mode's figures are its tier's budget rows (its prompt is the tier's); a share mode's are its
``effort`` rows. The accuracy change is paired: per problem, the mode's pass@1 minus ``high``'s, over the
problems both have, and the interval resamples those problems (each keeping its pair), so the problems'
own difficulty, shared by both modes, does not widen it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.chat_contract import BudgetContract, EffortMode
from bard_core.evaluation import bootstrap_mean_ci
from bard_core.schemas import EvalMode

REFERENCE_MODE = "high"


def _selects(mode: EffortMode, row: Mapping[str, Any]) -> bool:
    if mode.tier_tokens is not None:
        return row["mode"] == EvalMode.BUDGET and int(row["budget_tokens"]) == mode.tier_tokens
    return row["mode"] == EvalMode.EFFORT and row.get("effort") == mode.name


def _per_problem(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        out[r["problem_id"]].append(1.0 if r["correct"] else 0.0)
    return out


def _mean_tokens(rows: Sequence[Mapping[str, Any]]) -> float:
    return statistics.fmean(int(r["reasoning_tokens"]) for r in rows) if rows else float("nan")


def mode_table(
    generations: Sequence[Mapping[str, Any]],
    contract: BudgetContract,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (model, benchmark, mode), in the contract's mode order; empty without modes. Rows that
    failed to generate are left out; a (model, benchmark) without budget or effort rows (the truncation
    baseline's model) has no mode rows."""
    if not contract.modes:
        return []
    series: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in generations:
        if row.get("error") is None and row["mode"] in (EvalMode.BUDGET, EvalMode.EFFORT):
            series[(row["model"], row["benchmark"])].append(row)
    boot = (bootstrap_samples, confidence, seed)
    out = []
    for (model, benchmark), rows in sorted(series.items()):
        chosen = {m.name: [r for r in rows if _selects(m, r)] for m in contract.modes}
        reference = chosen.get(REFERENCE_MODE, [])
        high_tokens, high_problems = _mean_tokens(reference), _per_problem(reference)
        for mode in contract.modes:
            picked = chosen[mode.name]
            problems = _per_problem(picked)
            accuracy, low, high = bootstrap_mean_ci(list(problems.values()), *boot)
            shared = sorted(set(problems) & set(high_problems))
            diffs = [[statistics.fmean(problems[p]) - statistics.fmean(high_problems[p])] for p in shared]
            change, change_low, change_high = bootstrap_mean_ci(diffs, *boot)
            tokens = _mean_tokens(picked)
            out.append(
                {
                    "model": model,
                    "benchmark": benchmark,
                    "effort": mode.name,
                    "tier_tokens": mode.tier_tokens,
                    "share": mode.share,
                    "problems": len(problems),
                    "generations": len(picked),
                    "paired_problems": len(shared),
                    "mean_reasoning_tokens": tokens,
                    "token_reduction": 1.0 - tokens / high_tokens if high_tokens else float("nan"),
                    "accuracy": accuracy,
                    "accuracy_ci_low": low,
                    "accuracy_ci_high": high,
                    "accuracy_change": change,
                    "accuracy_change_ci_low": change_low,
                    "accuracy_change_ci_high": change_high,
                }
            )
    return out
