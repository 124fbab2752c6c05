"""The probe is the evaluation on the validation split, and every place that measures an output agrees with
the judge's one length rule: an output that never closes its think block counts at its generated length."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from bard_core.budget import BudgetSpec
from bard_core.config import ProbeConfig
from bard_core.engine import Completion, GenerationRequest, GenerationResult
from bard_core.evaluation import EvalSettings, evaluate_batch, summarize
from bard_core.rewards import BudgetReward
from bard_core.schemas import EvalMode
from bard_pipeline.infra.probe import probe_model

SPEC = BudgetSpec((16, 32), tolerance=0.25)
BUDGET = 16

RUN_ON = " ".join(["and"] * 30)  # never opens a think block: 30 tokens, far over 16 x 1.25
OPENED = "<think>\n" + " ".join(["w"] * 12)  # opens one and never closes it: 12 reasoning tokens, within


class Words:
    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


class Scripted:
    """An engine that answers every request with one fixed text."""

    model = backend = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [GenerationResult(r.request_id, (Completion(self.text, "length", 30),), 0) for r in requests]

    def close(self) -> None:
        return None


def _record() -> dict[str, Any]:
    return {"problem_id": "p", "problem": "?", "answer": "7", "budget_tokens": BUDGET,
            "prompt": [{"role": "user", "content": "?"}], "grader": "math", "meta": json.dumps({})}  # fmt: skip


def _rl_log(text: str) -> dict[str, float]:
    logged: dict[str, float] = {}
    BudgetReward(SPEC, Words())(
        prompts=[[]], completions=[text], answer=["7"], budget_tokens=[BUDGET], log_metric=logged.__setitem__
    )
    return logged


def _evaluation(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {**_record(), "model": "sft", "benchmark": "b", "mode": EvalMode.BUDGET}
    settings = EvalSettings("sft", SPEC, SPEC.tiers_tokens, 1, 0.0, 1.0, 0, 1.0, 48)
    (rows,), _ = evaluate_batch(Scripted(text), Words(), [request], settings)
    return rows[0], summarize(rows, SPEC, bootstrap_samples=10)[0]


@pytest.mark.parametrize(("text", "length", "over"), [(RUN_ON, 30, True), (OPENED, 12, False)])
def test_rl_log_probe_and_evaluation_give_an_unclosed_output_the_same_length(
    text: str, length: int, over: bool
) -> None:
    log = _rl_log(text)
    probe_rows, probe_summary = probe_model(Scripted(text), Words(), [_record()], SPEC, ProbeConfig(problems=1), "sft")
    row, metrics = _evaluation(text)
    assert log[f"budget/length_at_{BUDGET}"] == probe_rows[0]["reasoning_tokens"] == row["reasoning_tokens"] == length
    per_budget = probe_summary["per_budget"][str(BUDGET)]
    assert log["budget/over_budget"] == per_budget["over_budget"] == metrics["over_budget"] == float(over)
    assert not row["closed"] and not row["correct"] and not probe_rows[0]["parsed"] and log["budget/parsed"] == 0.0


def test_the_probe_is_a_greedy_single_sample_evaluation_at_every_tier() -> None:
    seen: list[GenerationRequest] = []

    class Recording(Scripted):
        def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
            seen.extend(requests)
            return super().generate(requests)

    records = [{**_record(), "budget_tokens": b} for b in SPEC.tiers_tokens]
    text = "<think>\n" + " ".join(["w"] * 16) + "\n</think>\n\n\\boxed{7}"
    rows, summary = probe_model(
        Recording(text), Words(), records, SPEC, ProbeConfig(problems=1, max_new_tokens=99), "rl"
    )
    assert [r.params.n for r in seen] == [1, 1] and {r.params.temperature for r in seen} == {0.0}
    assert {r.params.max_new_tokens for r in seen} == {99}  # a fixed cap, not one scaled by the budget
    assert [(r["budget_tokens"], r["correct"], r["reward"]) for r in rows] == [(16, True, 1.0), (32, True, 0.0)]
    assert summary["per_budget"]["16"]["within_tolerance"] == 1.0 and summary["overall"]["n"] == 2


def test_the_rl_log_the_probe_and_the_evaluation_agree_on_a_leak() -> None:
    leaky = BudgetSpec((16, 32), tolerance=0.25, leak_answer_tokens=3)
    text = "<think>\n" + " ".join(["w"] * 16) + "\n</think>\n\nso then again \\boxed{7}"  # 4 answer tokens
    logged: dict[str, float] = {}
    BudgetReward(leaky, Words())(
        prompts=[[]], completions=[text], answer=["7"], budget_tokens=[BUDGET], log_metric=logged.__setitem__
    )
    rows, summary = probe_model(Scripted(text), Words(), [_record()], leaky, ProbeConfig(problems=1), "sft")
    assert (rows[0]["answer_tokens"], rows[0]["leaked"]) == (4, True)
    assert logged["budget/leak_rate"] == summary["per_budget"][str(BUDGET)]["leak_rate"] == 1.0
    assert logged["budget/answer_tokens"] == summary["per_budget"][str(BUDGET)]["mean_answer_tokens"] == 4
