from __future__ import annotations

import json

import pyarrow as pa
import pytest

from bard_core import schemas
from bard_core.budget import BudgetSpec, parse_think
from bard_core.chat_contract import BudgetContract
from bard_core.config.stages import BudgetConfig
from bard_core.materialize import (
    BudgetLabel,
    BudgetPolicy,
    RLBudgets,
    assign_split,
    build_dataset,
    dataset_card,
    mode_records,
)
from bard_core.prompting import load_prompt

SPEC = BudgetSpec((16, 32), tolerance=0.25)


def _problems(n: int) -> dict[str, dict[str, str]]:
    return {
        f"p{i}": {"problem": f"What is {i}+1?", "answer": str(i + 1), "grader": "math", "meta": json.dumps({})}
        for i in range(n)
    }


def test_split_is_by_problem_and_deterministic() -> None:
    ids = [f"p{i}" for i in range(2000)]
    splits = [assign_split(i, 0.1, 0) for i in ids]
    assert splits == [assign_split(i, 0.1, 0) for i in ids]
    assert 0.07 < splits.count("validation") / len(ids) < 0.13
    assert splits != [assign_split(i, 0.1, 1) for i in ids]


def test_records_follow_the_budget_contract_and_never_straddle_splits() -> None:
    problems = _problems(200)
    tiers, gold = [], []
    for pid in problems:
        gold.append({"problem_id": pid, "reasoning": "long " * 40, "final": "\\boxed{x}", "reasoning_tokens": 40})
        tiers.append(
            {
                "problem_id": pid,
                "budget_tokens": 16,
                "reasoning": "a b",
                "final": "\\boxed{x}",
                "reasoning_tokens": 15,
                "valid": True,
                "reject_reason": None,
            }
        )
        tiers.append(
            {
                "problem_id": pid,
                "budget_tokens": 32,
                "reasoning": None,
                "final": None,
                "reasoning_tokens": 50,
                "valid": False,
                "reject_reason": "too_long",
            }
        )
    sft, rl, stats = build_dataset(tiers, gold, problems, load_prompt("budget_user.txt"), SPEC, True, 0.2, 0)
    train_ids = {r["problem_id"] for r in sft["train"]}
    val_ids = {r["problem_id"] for r in sft["validation"]}
    assert train_ids and val_ids and not train_ids & val_ids
    assert {r["problem_id"] for r in rl["validation"]} == val_ids
    record = next(r for r in sft["train"] if r["kind"] == "compressed")
    assert record["prompt"][0]["content"].endswith("Thinking budget: 16 tokens.")
    assert parse_think(record["completion"][0]["content"]).reasoning == "a b"
    gold_record = next(r for r in sft["train"] if r["kind"] == "gold")
    assert gold_record["budget_tokens"] == gold_record["reasoning_tokens"] == 40
    assert len(rl["train"]) + len(rl["validation"]) == 200 * 2  # every problem at every tier
    assert stats["tiers"]["16"]["valid"] == 200 and stats["tiers"]["32"]["rejected"] == 200
    assert stats["reject_reasons"] == {"too_long": 200}
    card = dataset_card(stats, SPEC, ["sft_train.parquet"], "lengths.png")
    assert "| 16 | 200 | 200 | 0 |" in card and "| too_long | 200 |" in card


def test_budget_agnostic_switch_trains_on_gold_traces_without_a_budget() -> None:
    problems = _problems(20)
    gold = [
        {"problem_id": p, "reasoning": "long " * 40, "final": "\\boxed{x}", "reasoning_tokens": 40} for p in problems
    ]
    tiers = [{"problem_id": p, "budget_tokens": 16, "reasoning": "a b", "final": "\\boxed{x}", "reasoning_tokens": 15,
              "valid": True, "reject_reason": None} for p in problems]  # fmt: skip
    template, plain = load_prompt("budget_user.txt"), load_prompt("plain_user.txt")
    sft, _, _ = build_dataset(tiers, gold, problems, template, SPEC, False, 0.2, 0, agnostic=plain)
    records = sft["train"] + sft["validation"]
    assert len(records) == len(problems) and {r["kind"] for r in records} == {"gold"}
    assert all("budget" not in r["prompt"][0]["content"].lower() for r in records)
    assert records[0]["prompt"][0]["content"] == problems[records[0]["problem_id"]]["problem"]


def _tier_rows(problems: dict[str, dict[str, str]], lengths: dict[int, int]) -> list[dict[str, object]]:
    return [
        {"problem_id": pid, "budget_tokens": tier, "reasoning": "a b", "final": "\\boxed{x}",
         "reasoning_tokens": length, "valid": True, "reject_reason": None}
        for pid in problems for tier, length in lengths.items()
    ]  # fmt: skip


def test_measured_labels_state_each_record_at_its_own_length_and_heldout_budgets_are_dropped() -> None:
    problems = _problems(50)
    tiers = _tier_rows(problems, {16: 14, 32: 24})  # 24 is held out
    policy = BudgetPolicy(BudgetLabel.MEASURED, frozenset({24}))
    sft, _, stats = build_dataset(
        tiers, [], problems, load_prompt("budget_user.txt"), SPEC, False, 0.0, 0, None, policy
    )
    records = sft["train"]
    assert {r["budget_tokens"] for r in records} == {14}
    assert all(r["budget_tokens"] == r["reasoning_tokens"] for r in records)
    assert records[0]["prompt"][0]["content"].endswith("Thinking budget: 14 tokens.")
    assert stats["reject_reasons"] == {"heldout_budget": 50}  # counted, not lost silently
    target, _, _ = build_dataset(tiers, [], problems, load_prompt("budget_user.txt"), SPEC, False, 0.0, 0)
    assert {r["budget_tokens"] for r in target["train"]} == {16, 32}  # the default labels by tier


def test_rl_budgets_drawn_from_the_range_avoid_heldout_budgets_and_are_seeded_per_problem() -> None:
    spec = BudgetSpec((16, 24, 32, 48, 64), tolerance=0.25)
    policy = BudgetPolicy(heldout_tokens=frozenset({40}), rl_budgets=RLBudgets.RANGE, rl_budgets_per_problem=3)
    drawn = {f"p{i}": policy.rl_budgets_for(f"p{i}", spec) for i in range(300)}
    budgets = [b for bs in drawn.values() for b in bs]
    assert all(16 <= b <= 64 and b != 40 for b in budgets) and all(len(bs) == 3 for bs in drawn.values())
    assert len(set(budgets)) > 40  # not only the tiers: (almost) every integer in the range
    assert drawn == {pid: policy.rl_budgets_for(pid, spec) for pid in drawn}
    assert BudgetPolicy().rl_budgets_for("p0", spec) == [16, 24, 32, 48, 64]


def test_a_tier_cannot_be_held_out() -> None:
    with pytest.raises(ValueError, match="heldout_budgets_tokens"):
        BudgetPolicy(heldout_tokens=frozenset({32})).check(SPEC)


def _mode_contract(spec: BudgetSpec) -> BudgetContract:
    modes = {"low": {"share": 0.25}, "medium": {"share": 0.5}, "high": {"share": 1.0}, "minimal": {"tier_tokens": 16}}
    return BudgetConfig(tiers_tokens=spec.tiers_tokens, tolerance=spec.tolerance, modes=modes).contract()


def test_share_modes_write_one_record_per_gold_trace_with_the_trace_nearest_the_share() -> None:
    problems = _problems(40)
    # Gold at 40 tokens; valid tiers at 14 (tier 16) and 22 (tier 32). low: 10 -> 14; medium: 20 -> 22;
    # high: 40 -> the gold trace itself.
    gold = [
        {"problem_id": p, "reasoning": "gold " * 40, "final": "\\boxed{x}", "reasoning_tokens": 40} for p in problems
    ]
    tiers = _tier_rows(problems, {16: 14, 32: 22})
    contract = _mode_contract(SPEC)
    policy = BudgetPolicy(heldout_tokens=frozenset({20}))  # a mode's target at a held-out budget is kept
    template = load_prompt("budget_user.txt")
    sft, _, stats = build_dataset(tiers, gold, problems, template, SPEC, True, 0.25, 0, None, policy, contract)
    records = sft["train"] + sft["validation"]
    modes = [r for r in records if r["kind"] == "mode"]
    assert len(modes) == 3 * len(problems)  # the tier mode `minimal` adds none
    by_mode = {name: [r for r in modes if r["mode"] == name] for name in ("low", "medium", "high")}
    assert {r["budget_tokens"] for r in by_mode["low"]} == {10} and {r["reasoning_tokens"] for r in by_mode["low"]} == {
        14
    }
    assert {r["budget_tokens"] for r in by_mode["medium"]} == {20}
    assert {r["reasoning_tokens"] for r in by_mode["medium"]} == {22}
    high = by_mode["high"][0]
    assert high["reasoning_tokens"] == 40 and parse_think(high["completion"][0]["content"]).reasoning.startswith("gold")
    problem = problems[high["problem_id"]]["problem"]
    assert high["prompt"][0]["content"] == contract.render(problem, effort="high")
    assert high["prompt"][0]["content"].endswith("Reasoning effort: high.")
    assert all(r["mode"] is None for r in records if r["kind"] != "mode")
    for split, rows in sft.items():  # a problem's mode records stay on its side of the split
        assert all(r["split"] == split for r in rows)
        assert {r["problem_id"] for r in rows if r["kind"] == "mode"} <= {r["problem_id"] for r in rows}
    assert stats["modes"]["low"] == {"records": 40, "mean_target_tokens": 10.0, "mean_reasoning_tokens": 14.0}
    assert stats["modes"]["high"]["mean_reasoning_tokens"] == 40.0
    assert "heldout_budget" not in stats["reject_reasons"]
    card = dataset_card(stats, SPEC, ["sft_train.parquet"], None)
    assert "## Effort modes" in card and "| low | 40 | 10.0 | 14.0 |" in card
    table = pa.Table.from_pylist(records, schema=schemas.SFT)
    assert table.column("mode").null_count == len(records) - len(modes)


def test_a_tie_picks_the_shorter_trace_and_no_modes_means_no_mode_records() -> None:
    problems = _problems(1)
    gold = [{"problem_id": "p0", "reasoning": "g", "final": "x", "reasoning_tokens": 40}]
    tiers = _tier_rows(problems, {16: 8, 32: 12})  # low's target 10: 8 and 12 are equally near
    records = mode_records(tiers, gold, problems, _mode_contract(SPEC))
    assert next(r for r in records if r["mode"] == "low")["reasoning_tokens"] == 8
    template = load_prompt("budget_user.txt")
    plain_contract = BudgetConfig(tiers_tokens=SPEC.tiers_tokens).contract()
    sft, _, stats = build_dataset(tiers, gold, problems, template, SPEC, True, 0.0, 0, contract=plain_contract)
    assert "modes" not in stats and all(r["kind"] != "mode" for r in sft["train"])
    agnostic, _, _ = build_dataset(
        tiers,
        gold,
        problems,
        template,
        SPEC,
        True,
        0.0,
        0,
        load_prompt("plain_user.txt"),
        contract=_mode_contract(SPEC),
    )
    assert {r["kind"] for r in agnostic["train"]} == {"gold"}  # the budget-agnostic baseline has no modes


def test_an_old_dataset_without_the_mode_column_still_conforms() -> None:
    rows = [{"problem_id": "p", "budget_tokens": 16, "reasoning_tokens": 15, "kind": "gold", "prompt": [],
             "completion": []}]  # fmt: skip
    old = pa.Table.from_pylist(rows, schema=schemas.SFT).drop_columns(["mode"])
    assert schemas.conform(old, schemas.SFT, "sft_train", "test").column("mode").to_pylist() == [None]
