"""Budget-following metrics over generations: per budget and overall.

Each generation row carries ``budget_tokens``, ``reasoning_tokens``, ``correct`` (bool), ``parsed``
and ``fidelity``, as ``judge`` gave them; the length figures are ``judge.length_summary``'s (an unclosed
output counts at its generated length: ignoring it would flatter a model that never closes its think block).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.budget import BudgetSpec
from bard_core.judge import length_summary


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant or shorter than 2."""
    if len(x) != len(y) or len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else math.nan


def _finite(value: float) -> float | None:
    """NaN does not survive JSON (manifests): an undefined statistic is None."""
    return None if math.isnan(value) else value


def budget_following(rows: Sequence[Mapping[str, Any]], spec: BudgetSpec) -> dict[str, Any]:
    """Per-budget accuracy and length statistics, plus the Spearman correlation of mean length with budget."""
    by_budget: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_budget[int(row["budget_tokens"])].append(row)
    per_budget: dict[str, dict[str, float]] = {}
    for budget, group in sorted(by_budget.items()):
        per_budget[str(budget)] = {
            "n": len(group),
            "accuracy": statistics.fmean(1.0 if r["correct"] else 0.0 for r in group),
            "parsed": statistics.fmean(1.0 if r["parsed"] else 0.0 for r in group),
            **length_summary([int(r["reasoning_tokens"]) for r in group], budget, spec),
            "mean_reward": statistics.fmean(float(r["fidelity"]) * (1.0 if r["correct"] else 0.0) for r in group),
            "leak_rate": statistics.fmean(1.0 if r.get("leaked") else 0.0 for r in group),
            "mean_answer_tokens": statistics.fmean(int(r.get("answer_tokens") or 0) for r in group),
        }
    budgets = [float(b) for b in per_budget]
    means = [v["mean_tokens"] for v in per_budget.values()]
    overall = {
        "n": len(rows),
        "accuracy": statistics.fmean(1.0 if r["correct"] else 0.0 for r in rows) if rows else None,
        "mean_relative_deviation": statistics.fmean(v["mean_relative_deviation"] for v in per_budget.values())
        if per_budget
        else None,
        "mean_reward": statistics.fmean(v["mean_reward"] for v in per_budget.values()) if per_budget else None,
        "spearman_budget_length": _finite(spearman(budgets, means)),
    }
    return {"overall": overall, "per_budget": per_budget}
