"""Evaluation across budgets: scoring one generation, truncating reasoning at a budget, and aggregating
generations into metrics with bootstrap confidence intervals.

A generation row (schema ``schemas.GENERATIONS``) is one of ``k`` samples of one model on one problem of
one benchmark at one budget. Accuracy is pass@1 averaged over the ``k`` samples of a problem, then over
problems; its confidence interval resamples *problems* (the unit that was drawn from a population), each
keeping its ``k`` samples, so more samples per problem tighten the interval only as far as they reduce the
within-problem noise.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import THINK_CLOSE, THINK_OPEN, BudgetSpec, parse_think
from bard_core.grading import grade

# How a row was produced: the budget in the prompt; the truncation baseline's uncut output (its natural
# length, the reference for "tokens saved"); that output cut at the budget and forced to answer.
MODE_BUDGET, MODE_UNCONSTRAINED, MODE_TRUNCATED = "budget", "unconstrained", "truncated"


@dataclass(frozen=True)
class EvalScore:
    correct: bool
    closed: bool  # the think block was closed (else the output ran on and is scored wrong)
    unparsed: bool  # closed, but the grader found no answer it could read: scored wrong and counted
    pred_answer: str | None


def score_generation(text: str, answer: str, grader: str, meta: Mapping[str, Any]) -> EvalScore:
    """Grade one output. Never raises on the model's text: anything unreadable is wrong, and says why."""
    think = parse_think(text)
    if not think.closed:
        return EvalScore(False, False, False, None)
    result = grade(think.final, answer, grader, meta)
    return EvalScore(result.correct, True, not result.parsed, result.pred_answer)


def truncation_prefix(reasoning_ids: Sequence[int], budget_tokens: int, decode: Any) -> str:
    """The assistant prefix of the truncation baseline: the first ``budget_tokens`` reasoning tokens, then
    a forced ``</think>`` so that the model must answer now. ``decode`` maps token ids to text."""
    cut = decode(list(reasoning_ids[:budget_tokens])).strip()
    return f"{THINK_OPEN}\n{cut}\n{THINK_CLOSE}\n\n"


# --------------------------------------------------------------------------- confidence intervals


def bootstrap_mean_ci(
    groups: Sequence[Sequence[float]], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-group means, with a percentile bootstrap interval that resamples groups (problems).

    Returns (mean, low, high). One group or none gives a degenerate interval at the mean (or NaNs)."""
    means = [statistics.fmean(g) for g in groups if g]
    if not means:
        return float("nan"), float("nan"), float("nan")
    point = statistics.fmean(means)
    if len(means) == 1:
        return point, point, point
    rng = random.Random(seed)
    n = len(means)
    draws = sorted(statistics.fmean(rng.choices(means, k=n)) for _ in range(samples))
    tail = (1.0 - confidence) / 2.0
    low = draws[int(tail * (samples - 1))]
    high = draws[round((1.0 - tail) * (samples - 1))]
    return point, low, high


# --------------------------------------------------------------------------- aggregation

GROUP_KEYS = ("model", "benchmark", "mode", "budget_tokens")


def _fraction(flags: Sequence[bool]) -> float:
    return statistics.fmean(1.0 if f else 0.0 for f in flags) if flags else float("nan")


def summarize(
    rows: Sequence[Mapping[str, Any]],
    spec: BudgetSpec,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One metrics row per (model, benchmark, mode, budget). Rows that failed to generate (``error``) are
    counted in ``errors`` and left out of every other figure."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in GROUP_KEYS)].append(row)
    reference = _unconstrained_lengths(rows)
    metrics = []
    for key, group in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        ok = [r for r in group if r.get("error") is None]
        model, benchmark, mode, budget = key
        per_problem: dict[str, list[float]] = defaultdict(list)
        for r in ok:
            per_problem[r["problem_id"]].append(1.0 if r["correct"] else 0.0)
        accuracy, low, high = bootstrap_mean_ci(list(per_problem.values()), bootstrap_samples, confidence, seed)
        lengths = [int(r["reasoning_tokens"]) for r in ok]
        budget = int(budget)
        fit = lengths if budget > 0 else []  # unconstrained rows have no budget to be measured against
        unconstrained = reference.get((benchmark,))
        mean_tokens = statistics.fmean(lengths) if lengths else float("nan")
        metrics.append(
            {
                "model": model,
                "benchmark": benchmark,
                "mode": mode,
                "budget_tokens": budget,
                "problems": len(per_problem),
                "generations": len(ok),
                "errors": len(group) - len(ok),
                "accuracy": accuracy,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "mean_reasoning_tokens": mean_tokens,
                "median_reasoning_tokens": float(statistics.median(lengths)) if lengths else float("nan"),
                "mean_relative_deviation": statistics.fmean(abs(n - budget) / budget for n in fit)
                if fit
                else float("nan"),
                "within_tolerance": _fraction([spec.within(n, budget) for n in fit]),
                "over_budget": _fraction([n > spec.bounds(budget)[1] for n in fit]),
                "unclosed": _fraction([not r["closed"] for r in ok]),
                "unparsed": sum(bool(r["unparsed"]) for r in ok),
                "tokens_saved": 1.0 - mean_tokens / unconstrained if unconstrained else float("nan"),
            }
        )
    return metrics


def _unconstrained_lengths(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str], float]:
    """Mean reasoning length of the unconstrained reference per benchmark (absent: no reference)."""
    lengths: dict[tuple[str], list[int]] = defaultdict(list)
    for row in rows:
        if row["mode"] == MODE_UNCONSTRAINED and row.get("error") is None:
            lengths[(row["benchmark"],)].append(int(row["reasoning_tokens"]))
    return {key: statistics.fmean(values) for key, values in lengths.items() if values}


def recompute_accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], float]:
    """Accuracy per (model, benchmark, mode, budget) straight from generations: the report's cross-check."""
    per_problem: dict[tuple[Any, ...], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("error") is None:
            per_problem[tuple(row[k] for k in GROUP_KEYS)][row["problem_id"]].append(bool(row["correct"]))
    return {
        key: statistics.fmean(statistics.fmean(1.0 if c else 0.0 for c in flags) for flags in problems.values())
        for key, problems in per_problem.items()
    }
