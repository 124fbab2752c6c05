from __future__ import annotations

import math

import pytest

from bard_core.budget import BudgetSpec
from bard_core.metrics import budget_following, ranks, spearman


def test_ranks_and_spearman() -> None:
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_budget_following_summary() -> None:
    spec = BudgetSpec((16, 32), tolerance=0.25)
    rows = [
        {"budget_tokens": 16, "reasoning_tokens": 16, "correct": True, "parsed": True, "fidelity": 1.0},
        {"budget_tokens": 16, "reasoning_tokens": 24, "correct": False, "parsed": True, "fidelity": 0.75},
        {"budget_tokens": 32, "reasoning_tokens": 32, "correct": True, "parsed": True, "fidelity": 1.0},
        {"budget_tokens": 32, "reasoning_tokens": 64, "correct": True, "parsed": False, "fidelity": 0.0},
    ]
    summary = budget_following(rows, spec)
    b16, b32 = summary["per_budget"]["16"], summary["per_budget"]["32"]
    assert b16["accuracy"] == 0.5 and b16["mean_tokens"] == 20 and b16["mean_relative_deviation"] == 0.25
    assert b16["within_tolerance"] == 0.5 and b16["over_budget"] == 0.5 and b16["mean_reward"] == 0.5
    assert b32["parsed"] == 0.5 and b32["mean_relative_deviation"] == 0.5
    assert summary["overall"]["spearman_budget_length"] == pytest.approx(1.0)
    assert summary["overall"]["mean_relative_deviation"] == pytest.approx(0.375)
