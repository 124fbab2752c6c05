"""What a training stage trains on: seeded RL prompt draws and over-length drops, decided once by the driver."""

from __future__ import annotations

import pytest

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


def _rl_rows() -> list[dict[str, object]]:
    # rl_train repeats a problem over its budgets; the curriculum wants each problem once.
    return [
        {"problem_id": pid, "problem": f"  What is {a} + {a}?\n", "answer": str(2 * a), "budget_tokens": b}
        for pid, a in (("p2", 2), ("p1", 1), ("p3", 3))
        for b in (16, 32)
    ]


def test_instruction_records_are_one_per_problem_in_the_budget_contracts_format() -> None:
    from bard_core import schemas
    from bard_core.budget import AGNOSTIC_TEMPLATE_FIELDS, parse_think, render_assistant
    from bard_core.grading import extract_boxed
    from bard_core.prompting import load_prompt
    from bard_core.training_data import INSTRUCTION_KIND, instruction_records

    template = load_prompt("plain_user.txt").require(AGNOSTIC_TEMPLATE_FIELDS)
    records = instruction_records(_rl_rows(), template)
    assert [r["problem_id"] for r in records] == ["p1", "p2", "p3"]  # one each, sorted: not in input order
    first = records[0]
    assert first["kind"] == INSTRUCTION_KIND == "instruction"
    assert first["budget_tokens"] == 0 and first["reasoning_tokens"] == 0
    assert first["prompt"] == [{"role": "user", "content": "What is 1 + 1?"}]  # no budget shown
    assistant = first["completion"][0]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == render_assistant("", "The answer is \\boxed{2}.")  # the one rendering
    parsed = parse_think(assistant["content"])
    assert parsed.closed and parsed.reasoning == "" and extract_boxed(parsed.final) == "2"
    import pyarrow as pa

    assert pa.Table.from_pylist(records, schema=schemas.SFT_KEPT).num_rows == 3  # the SFT rows' contract
    custom = instruction_records(_rl_rows()[:1], type(template)("inline", "Solve: {problem}"))
    assert custom[0]["prompt"][0]["content"] == "Solve: What is 2 + 2?"


def test_the_instruction_template_may_not_ask_for_a_budget() -> None:
    from bard_core.budget import AGNOSTIC_TEMPLATE_FIELDS
    from bard_core.prompting import PromptError, load_prompt

    with pytest.raises(PromptError, match=r"unknown field\(s\) \['budget_tokens'\]"):
        load_prompt("budget_user.txt").require(AGNOSTIC_TEMPLATE_FIELDS)


def test_the_curriculum_order_puts_every_instruction_sample_first() -> None:
    from bard_core.training_data import curriculum_order

    order = curriculum_order(instruction=3, reasoning=5, instruction_samples=7, total_samples=19, seed=1)
    head, tail = order[:7], order[7:]
    assert len(order) == 19 and all(i < 3 for i in head) and all(3 <= i < 8 for i in tail)
    # Each pass is a permutation of its phase: nothing repeats before the whole phase was seen.
    assert sorted(head[:3]) == sorted(head[3:6]) == [0, 1, 2] and sorted(tail[:5]) == [3, 4, 5, 6, 7]
    assert sorted(tail[5:10]) == [3, 4, 5, 6, 7] and tail[:5] != tail[5:10]  # a fresh shuffle per epoch
    assert order == curriculum_order(3, 5, 7, 19, seed=1)  # what a resumed run skips through
    assert order != curriculum_order(3, 5, 7, 19, seed=2)
    with pytest.raises(ValueError, match="instruction phase needs records"):
        curriculum_order(0, 5, 4, 8, seed=0)


def test_epoch_based_steps_count_as_the_trainer_does() -> None:
    from bard_core.training_data import epoch_steps

    assert epoch_steps(10, per_device_batch=8, grad_accum=1, world=1, epochs=1) == 2  # a partial last batch
    assert epoch_steps(17, per_device_batch=4, grad_accum=2, world=1, epochs=3.0) == 9  # 5 batches: 3 steps
    assert epoch_steps(16, per_device_batch=2, grad_accum=1, world=4, epochs=0.5) == 1


def test_the_curriculum_is_validated_and_leaves_fingerprints_alone_when_off() -> None:
    from bard_core.config import SFTStageConfig
    from bard_core.config.training import CurriculumConfig

    assert "curriculum" not in SFTStageConfig().fingerprint_dump()
    on = SFTStageConfig(curriculum=CurriculumConfig(instruction_steps=3), trl={"max_steps": 10})
    assert on.fingerprint_dump()["curriculum"] == {"instruction_steps": 3, "instruction_template": "plain_user.txt"}
    with pytest.raises(ValueError, match=r"instruction_steps=10 leaves no reasoning steps.*trl.max_steps=10"):
        SFTStageConfig(curriculum={"instruction_steps": 10}, trl={"max_steps": 10})
    with pytest.raises(ValueError, match=r"\['shuffle_dataset'\] reorder the records"):
        SFTStageConfig(curriculum={"instruction_steps": 1}, trl={"max_steps": 10, "shuffle_dataset": True})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        CurriculumConfig(instruction_steps=0)
    SFTStageConfig(curriculum={"instruction_steps": 50})  # epoch-based: checked against the kept records later
