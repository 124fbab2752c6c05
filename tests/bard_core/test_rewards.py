"""The multiplicative reward: hand-written cases and the property that a short wrong answer never wins."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from bard_core.budget import BudgetSpec, FidelityShape
from bard_core.rewards import BudgetReward, RewardKind, score

SPEC = BudgetSpec((16, 32, 64, 128), FidelityShape.TARGET, 0.25)


class Words:
    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def _out(words: int, answer: str = "7", closed: bool = True) -> str:
    body = "<think>\n" + " ".join(["w"] * words)
    return body + (f"\n</think>\n\nThe answer is \\boxed{{{answer}}}." if closed else "")


@pytest.mark.parametrize(
    ("text", "budget", "expected"),
    [
        (_out(32), 32, 1.0),  # correct and on budget
        (_out(36), 32, 0.75),  # inside the 25 % band, 4 tokens off: 1 - 4 / (2 x 0.25 x 32)
        (_out(40), 32, 0.5),  # at the edge of the band
        (_out(96), 32, 0.0),  # correct but three times over: fidelity falls to 0
        (_out(32, answer="8"), 32, 0.0),  # wrong, on budget
        (_out(32, closed=False), 32, 0.0),  # no </think>: unparseable
        ("<think>\n</think>\n\nThe answer is \\boxed{7}.", 32, 0.0),  # empty reasoning
        ("<think>\nw w\n</think>\n\nseven", 16, 0.0),  # no boxed answer
    ],
)
def test_hand_written_cases(text: str, budget: int, expected: float) -> None:
    reasoning_words = len(text.split("</think>")[0].replace("<think>", "").split())
    assert score(text, "7", budget, SPEC, reasoning_words).reward == pytest.approx(expected)


def test_a_short_wrong_answer_never_beats_a_correct_answer_near_its_budget() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        budget = rng.choice(SPEC.tiers_tokens)
        low, high = SPEC.bounds(budget)
        wrong_len = rng.randint(1, budget)  # short (or any length up to the budget) and wrong
        near_len = rng.randint(low, high)
        wrong_reward = score(_out(wrong_len, answer="8"), "7", budget, SPEC, wrong_len).reward
        right_reward = score(_out(near_len), "7", budget, SPEC, near_len).reward
        assert wrong_reward < right_reward


def test_trl_reward_function_logs_each_component() -> None:
    logged: dict[str, float] = {}
    reward = BudgetReward(SPEC, Words())
    completions = [[{"role": "assistant", "content": _out(n, a)}] for n, a in ((16, "7"), (16, "8"), (200, "7"))]
    values = reward(
        prompts=[[]] * 3,
        completions=completions,
        answer=["7"] * 3,
        budget_tokens=[16, 16, 64],
        grader=["math"] * 3,
        meta=["{}"] * 3,
        log_metric=logged.__setitem__,
        trainer_state=None,
    )
    assert values == [1.0, 0.0, 0.0]
    assert logged["budget/correct"] == pytest.approx(2 / 3) and logged["budget/reward"] == pytest.approx(1 / 3)
    assert logged["budget/length_at_16"] == 16 and logged["budget/length_at_64"] == 200
    assert logged["budget/over_budget"] == pytest.approx(1 / 3) and logged["budget/parsed"] == 1.0
    assert reward.__name__ == "budget_reward"


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        (_out(32), 32),  # correct, on budget
        (_out(36), 32),  # correct, inside the band
        (_out(96), 32),  # correct, far over
        (_out(32, answer="8"), 32),  # wrong, on budget: the shortcut additive pays for
        (_out(8, answer="8"), 32),  # wrong and short
        (_out(32, closed=False), 32),  # unparseable
    ],
)
def test_the_additive_option_changes_only_how_the_components_combine(text: str, budget: int) -> None:
    words = len(text.split("</think>")[0].replace("<think>", "").split())
    product = score(text, "7", budget, SPEC, words)
    total = score(text, "7", budget, SPEC, words, kind=RewardKind.ADDITIVE)
    assert (total.correct, total.fidelity, total.reasoning_tokens, total.parsed, total.over) == (
        product.correct,
        product.fidelity,
        product.reasoning_tokens,
        product.parsed,
        product.over,
    )
    assert product.reward == product.correct * product.fidelity
    assert total.reward == product.correct + product.fidelity


def test_additive_pays_a_wrong_answer_on_budget_and_multiplicative_does_not() -> None:
    wrong = _out(32, answer="8")
    assert score(wrong, "7", 32, SPEC, 32).reward == 0.0
    assert score(wrong, "7", 32, SPEC, 32, kind=RewardKind.ADDITIVE).reward == 1.0
    assert score(_out(32, closed=False), "7", 32, SPEC, 32, kind=RewardKind.ADDITIVE).reward == 0.0  # unparseable


def test_the_trl_reward_function_uses_its_kind() -> None:
    completions = [[{"role": "assistant", "content": _out(16, "8")}]]
    args = {"prompts": [[]], "completions": completions, "answer": ["7"], "budget_tokens": [16]}
    assert BudgetReward(SPEC, Words())(**args) == [0.0]
    assert BudgetReward(SPEC, Words(), RewardKind.ADDITIVE)(**args) == [1.0]


LEAKY = BudgetSpec((16, 32, 64, 128), FidelityShape.TARGET, 0.25, leak_answer_tokens=8)


def _leaky_out(words: int, answer_words: int) -> str:
    """A correct output whose answer runs on for ``answer_words`` words before the boxed answer."""
    return _out(words).replace("The answer is", " ".join(["so"] * answer_words) + " The answer is")


def test_the_leak_factor_scales_only_a_leaked_output() -> None:
    completions = [[{"role": "assistant", "content": _leaky_out(16, n)}] for n in (0, 20)]
    args = {"prompts": [[]] * 2, "completions": completions, "answer": ["7"] * 2, "budget_tokens": [16] * 2}
    assert BudgetReward(LEAKY, Words())(**args) == [1.0, 1.0]  # no factor: a leak costs nothing
    logged: dict[str, float] = {}
    penalised = BudgetReward(LEAKY, Words(), leak_factor=0.5)(**args, log_metric=logged.__setitem__)
    assert penalised == [1.0, 0.5]
    assert logged["budget/leak_rate"] == pytest.approx(0.5)
    assert logged["budget/answer_tokens"] == pytest.approx((4 + 24) / 2)  # "The answer is \boxed{7}." is 4 words
    assert logged["budget/reward"] == pytest.approx(0.75)


def test_the_leak_factor_applies_to_the_additive_reward_too() -> None:
    text = _leaky_out(32, 20)
    plain = score(text, "7", 32, LEAKY, 32, kind=RewardKind.ADDITIVE, answer_tokens=24)
    leaked = score(text, "7", 32, LEAKY, 32, kind=RewardKind.ADDITIVE, answer_tokens=24, leak_factor=0.25)
    assert plain.leaked and plain.reward == 2.0 and leaked.reward == 0.5
    assert score(text, "7", 32, LEAKY, 32, answer_tokens=8, leak_factor=0.25).reward == 1.0  # at the threshold
