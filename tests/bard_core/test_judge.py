"""One verdict per output: closed, parsed, graded, its length by the one rule, and its fit to the budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from bard_core.budget import BudgetSpec
from bard_core.judge import counted_text, judge, length_summary, verdicts

SPEC = BudgetSpec((16, 32), tolerance=0.25)


class Words:
    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def _judge(texts: list[str], budget: int = 16) -> list:  # type: ignore[type-arg]
    n = len(texts)
    return verdicts(texts, ["7"] * n, ["math"] * n, [{}] * n, [budget] * n, SPEC, Words())


def test_an_unclosed_output_counts_at_its_generated_length_and_is_wrong() -> None:
    run_on, opened, good = _judge(
        ["and so on " * 10, "<think>\nw w w \\boxed{7}", "<think>\nw w\n</think>\n\\boxed{7}"]
    )
    assert counted_text("and so on") == "and so on"  # no think block: the whole generation
    assert (run_on.reasoning_tokens, run_on.closed, run_on.correct, run_on.over) == (30, False, False, True)
    assert (opened.reasoning_tokens, opened.closed, opened.pred_answer, opened.correct) == (4, False, None, False)
    assert (good.reasoning_tokens, good.parsed, good.correct, good.reward) == (2, True, True, 0.0)  # far too short


def test_fit_and_reward_follow_the_budget_contract() -> None:
    on, edge, over, empty = _judge(["<think>\n" + "w " * n + "\n</think>\n\\boxed{7}" for n in (16, 20, 21, 0)])
    assert (on.within, on.over, on.fidelity, on.reward) == (True, False, 1.0, 1.0)
    assert (edge.within, edge.over, edge.fidelity) == (True, False, 0.5)  # the edge of the accepted band
    assert (over.within, over.over) == (False, True)
    assert empty.closed and empty.correct and not empty.parsed and empty.reward == 0.0  # nothing to reward
    assert not judge("<think>\nw\n</think>\nfour", "4", "math", {}, 16, SPEC, 1, 1).answered


def test_no_budget_has_no_fit() -> None:
    (free,) = _judge(["<think>\n" + "w " * 99 + "\n</think>\n\\boxed{7}"], budget=0)
    assert free.correct and (free.within, free.over, free.fidelity) == (False, False, 0.0)
    summary = length_summary([10, 30], 0, SPEC)
    assert summary["mean_tokens"] == 20 and math.isnan(summary["over_budget"])
    assert length_summary([16, 24], 16, SPEC)["over_budget"] == pytest.approx(0.5)
