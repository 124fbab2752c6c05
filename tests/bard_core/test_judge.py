"""One verdict per output: closed, parsed, graded, its length by the one rule, and its fit to the budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from bard_core.budget import BudgetSpec
from bard_core.judge import (
    NO_OUTPUT_COLUMNS,
    answer_text,
    counted_text,
    judge,
    length_summary,
    verdict_columns,
    verdicts,
)

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


LEAKY = BudgetSpec((16, 32), tolerance=0.25, leak_answer_tokens=4)


class CountingWords(Words):
    """Counts words, and how often it was asked (the batch is meant to be one tokenizer call)."""

    def __init__(self) -> None:
        self.calls = 0

    def count_many(self, texts: Sequence[str]) -> list[int]:
        self.calls += 1
        return super().count_many(texts)


def test_an_answer_longer_than_the_threshold_leaked_and_one_at_it_did_not() -> None:
    texts = ["<think>\nw w\n</think>\n" + " ".join(["x"] * n) + " \\boxed{7}" for n in (3, 4, 0)]
    counter = CountingWords()
    at, past, bare = verdicts(texts, ["7"] * 3, ["math"] * 3, [{}] * 3, [16] * 3, LEAKY, counter)
    assert counter.calls == 1  # reasoning and answer lengths counted in one call
    assert (at.answer_tokens, at.leaked) == (4, False)  # at the threshold: not a leak
    assert (past.answer_tokens, past.leaked) == (5, True)  # one token past it
    assert (bare.answer_tokens, bare.leaked) == (1, False)
    assert at.correct and past.correct  # a leak is reported, not graded: the answer still counts


def test_an_unclosed_output_has_no_answer_and_cannot_leak() -> None:
    run_on, opened = verdicts(
        ["x " * 50, "<think>\n" + "w " * 50], ["7"] * 2, ["math"] * 2, [{}] * 2, [16] * 2, LEAKY, Words()
    )
    assert (run_on.answer_tokens, run_on.leaked) == (0, False)
    assert (opened.answer_tokens, opened.leaked) == (0, False)
    assert answer_text("x " * 50) == "" and answer_text("<think>\nw\n</think>\n a b ") == "a b"


def test_verdict_columns_carry_the_answer_length_and_the_leak() -> None:
    (v,) = verdicts(["<think>\nw\n</think>\na b c d e \\boxed{7}"], ["7"], ["math"], [{}], [16], LEAKY, Words())
    columns = verdict_columns(v)
    assert (columns["answer_tokens"], columns["leaked"]) == (6, True)
    assert set(verdict_columns(v)) >= set(NO_OUTPUT_COLUMNS)  # a failed row has every judged column too
    assert (NO_OUTPUT_COLUMNS["answer_tokens"], NO_OUTPUT_COLUMNS["leaked"]) == (0, False)


def test_the_leak_threshold_comes_from_the_budget_config() -> None:
    from bard_core.chat_contract import BudgetContract
    from bard_core.config.stages import BudgetConfig

    config = BudgetConfig(tiers_tokens=(16, 32), leak_answer_tokens=24)
    assert config.spec().leak_answer_tokens == 24
    contract = BudgetContract.from_json(config.contract().to_json())  # as a served model reads it back
    assert contract.spec.leak_answer_tokens == contract.leak_answer_tokens == 24
    assert BudgetSpec((16,)).leak_answer_tokens == 256  # the default, as in BudgetConfig
    with pytest.raises(ValueError, match="leak_answer_tokens"):
        BudgetSpec((16,), leak_answer_tokens=0)
