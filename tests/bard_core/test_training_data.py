"""What a training stage trains on: seeded RL prompt draws and over-length drops, decided once by the driver."""

from __future__ import annotations

from bard_core.config import RLStageConfig
from bard_core.training_data import draw_rl_prompts, split_overlength


def test_rl_budgets_are_drawn_by_weight_deterministically() -> None:
    records = [{"problem_id": f"p{i}", "budget_tokens": b} for i in range(400) for b in (16, 32, 64)]
    section = RLStageConfig(budget_weights={16: 1, 32: 3, 64: 0}, budgets_per_problem=1, seed=3)
    drawn = draw_rl_prompts(records, section)
    assert drawn == draw_rl_prompts(list(reversed(records)), section)
    budgets = [r["budget_tokens"] for r in drawn]
    assert len(drawn) == 400 and 64 not in budgets and 0.65 < budgets.count(32) / 400 < 0.85
    assert len(draw_rl_prompts(records, RLStageConfig(budgets_per_problem=2, max_prompts=50))) == 50


def test_a_problems_draw_does_not_depend_on_the_other_problems() -> None:
    records = [{"problem_id": f"p{i}", "budget_tokens": b} for i in range(50) for b in (16, 32, 64)]
    section = RLStageConfig(budgets_per_problem=3, seed=7)
    every = draw_rl_prompts(records, section)
    fewer = draw_rl_prompts([r for r in records if r["problem_id"] != "p3"], section)

    def budgets_of(drawn: list[dict[str, object]], pid: str) -> list[object]:
        return sorted(str(r["budget_tokens"]) for r in drawn if r["problem_id"] == pid)

    assert all(budgets_of(every, f"p{i}") == budgets_of(fewer, f"p{i}") for i in range(50) if i != 3)
    assert len(every) == 150 and len(fewer) == 147
    assert draw_rl_prompts(records, RLStageConfig(seed=8)) != draw_rl_prompts(records, RLStageConfig(seed=7))


def test_problems_without_a_weighted_tier_get_no_prompt_and_draws_are_copies() -> None:
    records = [{"problem_id": "a", "budget_tokens": 16}, {"problem_id": "b", "budget_tokens": 64}]
    drawn = draw_rl_prompts(records, RLStageConfig(budget_weights={16: 1.0, 64: 0.0}))
    assert drawn == [{"problem_id": "a", "budget_tokens": 16}]
    drawn[0]["budget_tokens"] = 99  # the caller's rows are never aliased
    assert records[0]["budget_tokens"] == 16


def test_over_length_records_are_dropped_in_order_and_noted() -> None:
    records = [{"problem_id": f"p{i}", "budget_tokens": 16, "kind": "gold"} for i in range(4)]
    kept, dropped = split_overlength(records, [10, 30, 20, 31], max_tokens=20)
    assert [r["problem_id"] for r in kept] == ["p0", "p2"] and kept[0] == records[0]
    assert dropped == [
        {"problem_id": "p1", "budget_tokens": 16, "tokens": 30},
        {"problem_id": "p3", "budget_tokens": 16, "tokens": 31},
    ]
    assert split_overlength([], [], max_tokens=1) == ([], [])


def test_without_weights_rl_draws_among_the_budgets_the_dataset_carries() -> None:
    records = [{"problem_id": f"p{i}", "budget_tokens": b} for i in range(40) for b in (17, 45, 101)]
    drawn = draw_rl_prompts(records, RLStageConfig(budgets_per_problem=4))
    assert {r["budget_tokens"] for r in drawn} == {17, 45, 101}
