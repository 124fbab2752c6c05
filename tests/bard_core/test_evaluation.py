"""Evaluation maths: judging a generation, the truncation prefix, bootstrap intervals and metric aggregation."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pytest

from bard_core import schemas
from bard_core.budget import BudgetSpec
from bard_core.chat_contract import BudgetContract
from bard_core.config.stages import BudgetConfig
from bard_core.engine import Completion, GenerationRequest, GenerationResult
from bard_core.evaluation import (
    EvalSettings,
    bootstrap_mean_ci,
    eval_requests,
    evaluate_batch,
    generation_order,
    in_request_order,
    prepared,
    recompute_accuracy,
    summarize,
)
from bard_core.judge import Verdict, judge
from bard_core.mode_table import mode_table
from bard_core.prompting import PromptTemplate
from bard_core.report import render_markdown
from bard_core.schemas import EvalMode
from bard_core.truncation import truncation_prefix

SPEC = BudgetSpec((16, 32, 64, 128), "target", 0.25)


def score_generation(text: str, answer: str, grader: str, meta: dict[str, Any]) -> Verdict:
    """An evaluation row's verdict (its length and budget play no part in these cases)."""
    return judge(text, answer, grader, meta, 32, SPEC, 0, 0)


def test_scoring_tells_wrong_unclosed_and_unparsed_apart() -> None:
    ok = score_generation("<think>\n2+2=4\n</think>\n\nThe answer is \\boxed{4}.", "4", "math", {})
    assert ok.correct and ok.closed and not ok.unparsed and ok.pred_answer == "4"
    wrong = score_generation("<think>\nhm\n</think>\n\n\\boxed{5}", "4", "math", {})
    assert not wrong.correct and wrong.closed and not wrong.unparsed
    unclosed = score_generation("<think>\n2+2 is ... \\boxed{4}", "4", "math", {})
    assert not unclosed.correct and not unclosed.closed
    unparsed = score_generation("<think>\nhm\n</think>\n\nfour, I think", "4", "math", {})
    assert not unparsed.correct and unparsed.closed and unparsed.unparsed
    choice = score_generation("<think>\nB fits\n</think>\n\nThe answer is (B).", "B", "choice", {})
    assert choice.correct


def test_truncation_prefix_cuts_at_the_budget_and_forces_the_answer() -> None:
    words = [f"w{i}" for i in range(10)]
    prefix = truncation_prefix(list(range(10)), 4, lambda ids: " ".join(words[i] for i in ids))
    assert prefix == "<think>\nw0 w1 w2 w3\n</think>\n\n"


def test_bootstrap_matches_the_normal_approximation_for_a_known_proportion() -> None:
    # 400 problems, 200 right: the 95% interval of a proportion of 0.5 is 0.5 +- 1.96 * sqrt(0.25 / 400).
    groups = [[1.0]] * 200 + [[0.0]] * 200
    mean, low, high = bootstrap_mean_ci(groups, samples=4000, seed=1)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert mean == 0.5
    assert low == pytest.approx(0.5 - half, abs=0.01) and high == pytest.approx(0.5 + half, abs=0.01)
    assert bootstrap_mean_ci([[1.0, 0.0]]) == (0.5, 0.5, 0.5)  # one problem: no spread to resample
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))


def test_intervals_shrink_as_k_grows() -> None:
    rng = random.Random(0)
    difficulty = [rng.random() for _ in range(100)]  # each problem's true pass rate

    def width(k: int) -> float:
        groups = [[1.0 if rng.random() < p else 0.0 for _ in range(k)] for p in difficulty]
        _, low, high = bootstrap_mean_ci(groups, samples=2000, seed=2)
        return high - low

    widths = [width(k) for k in (1, 4, 32)]
    assert widths[0] > widths[1] > widths[2]


def _row(model: str, mode: str, budget: int, pid: str, correct: bool, tokens: int, **extra: object) -> dict:
    row = {"model": model, "benchmark": "b", "mode": mode, "budget_tokens": budget, "problem_id": pid,
           "correct": correct, "reasoning_tokens": tokens, "closed": True, "unparsed": False,
           "error": None}  # fmt: skip
    return {**row, **extra}


def test_summary_per_series_and_budget() -> None:
    rows = [
        _row("sft", EvalMode.BUDGET, 32, "p1", True, 32),
        _row("sft", EvalMode.BUDGET, 32, "p1", False, 40),  # p1: 1 of 2 right
        _row("sft", EvalMode.BUDGET, 32, "p2", True, 24),
        _row("sft", EvalMode.BUDGET, 32, "p2", True, 100, unparsed=False),  # p2: 2 of 2 right
        _row("sft", EvalMode.BUDGET, 32, "p3", False, 0, error="prompt too long"),  # counted, not scored
        _row("sft", EvalMode.UNCONSTRAINED, 0, "p1", True, 80),
        _row("sft", EvalMode.UNCONSTRAINED, 0, "p2", True, 120),
        _row("sft", EvalMode.TRUNCATED, 32, "p1", False, 32, unparsed=True),
    ]
    metrics = {(m["mode"], m["budget_tokens"]): m for m in summarize(rows, SPEC, bootstrap_samples=200)}
    budget = metrics[(EvalMode.BUDGET, 32)]
    assert budget["accuracy"] == pytest.approx(0.75) and budget["problems"] == 2 and budget["errors"] == 1
    assert budget["mean_reasoning_tokens"] == pytest.approx(49.0)
    assert budget["within_tolerance"] == pytest.approx(0.75)  # 32, 40 and 24 are inside [24, 40]
    assert budget["over_budget"] == pytest.approx(0.25)  # only 100 exceeds 40
    assert budget["tokens_saved"] == pytest.approx(1 - 49.0 / 100.0)  # unconstrained mean: 100 tokens
    assert metrics[(EvalMode.TRUNCATED, 32)]["unparsed"] == 1
    assert recompute_accuracy(rows)[("sft", "b", EvalMode.BUDGET, 32)] == budget["accuracy"]


def _settings(**overrides: object) -> EvalSettings:
    fields: dict[str, object] = {"label": "sft", "spec": SPEC, "budgets_tokens": (16, 32, 64, 128),
                                 "samples_per_problem": 2, "temperature": 0.7, "top_p": 1.0, "seed": 0,
                                 "max_new_tokens_factor": 2.0, "answer_tokens": 24,
                                 "truncation_max_new_tokens": 160, "truncation_answer_tokens": 24}  # fmt: skip
    return EvalSettings(**{**fields, **overrides})  # type: ignore[arg-type]


def _requests() -> list[dict[str, Any]]:
    budgeted = PromptTemplate("u", "{problem} in {budget_tokens} tokens")
    plain = PromptTemplate("p", "{problem}")
    problems = [{"problem_id": f"p{i}", "problem": f"q{i}", "answer": "1", "meta": "{}", "grader": "math"}
                for i in range(5)]  # fmt: skip
    return eval_requests("b", problems, ["sft"], (16, 32, 64, 128), budgeted, plain)["sft"]


def test_generation_order_makes_each_token_limit_contiguous_longest_first() -> None:
    rows = _requests()
    settings = _settings()
    assert [r["budget_tokens"] for r in rows[:8]] == [16, 32, 64, 128, 16, 32, 64, 128]  # problem-major
    ordered = generation_order(rows, settings)
    limits = [settings.params(r).max_new_tokens for r in ordered]
    assert limits == sorted(limits, reverse=True) and limits[0] == 2 * 128 + 24
    # each budget is one run of rows, even where two budgets share a token limit
    assert all(len({r["budget_tokens"] for r in ordered[i : i + 5]}) == 1 for i in range(0, 20, 5))
    same_limit = generation_order(rows, _settings(max_new_tokens_factor=0.0))  # every limit answer_tokens
    assert [r["budget_tokens"] for r in same_limit[::5]] == [16, 32, 64, 128]
    assert all(len({r["budget_tokens"] for r in same_limit[i : i + 5]}) == 1 for i in range(0, 20, 5))
    # the same rows, and within a budget the problems keep their order (so metrics see the same order)
    assert sorted(map(id, ordered)) == sorted(map(id, rows))
    for budget in (16, 32, 64, 128):
        assert [r["problem_id"] for r in ordered if r["budget_tokens"] == budget] == [f"p{i}" for i in range(5)]


def test_generation_order_sorts_prompts_by_length_within_a_budget() -> None:
    budgeted = PromptTemplate("u", "{problem} in {budget_tokens} tokens")
    problems = [{"problem_id": f"p{i}", "problem": "x" * n, "answer": "1", "meta": "{}", "grader": "math"}
                for i, n in enumerate([30, 10, 20])]  # fmt: skip
    rows = eval_requests("b", problems, ["sft"], (16, 128), budgeted, budgeted)["sft"]
    ordered = generation_order(rows, _settings())
    assert [(r["budget_tokens"], r["problem_id"]) for r in ordered] == [
        (128, "p1"), (128, "p2"), (128, "p0"), (16, "p1"), (16, "p2"), (16, "p0")
    ]  # fmt: skip


def test_metrics_do_not_depend_on_the_generation_order() -> None:
    rng = random.Random(3)
    budgeted = PromptTemplate("u", "{problem} in {budget_tokens} tokens")
    problems = [{"problem_id": f"p{i}", "problem": "x" * rng.randrange(5, 50), "answer": "1", "meta": "{}",
                 "grader": "math"} for i in range(30)]  # fmt: skip
    requests = eval_requests("b", problems, ["sft"], (16, 32, 64, 128), budgeted, budgeted)["sft"]
    rows = {(r["problem_id"], r["budget_tokens"]): [
        _row("sft", EvalMode.BUDGET, r["budget_tokens"], r["problem_id"], rng.random() < 0.5, rng.randrange(8, 200))
        for _ in range(2)] for r in requests}  # fmt: skip
    generated = [
        g for r in generation_order(requests, _settings()) for g in rows[(r["problem_id"], r["budget_tokens"])]
    ]
    in_order = [g for r in requests for g in rows[(r["problem_id"], r["budget_tokens"])]]
    assert generated != in_order

    def by_group(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
        return {b: [r for r in rows if r["budget_tokens"] == b] for b in (16, 32, 64, 128)}

    assert by_group(in_request_order(generated, requests)) == by_group(in_order)  # each group in problem order
    before, after = (
        summarize(r, SPEC, bootstrap_samples=200) for r in (in_order, in_request_order(generated, requests))
    )
    assert repr(after) == repr(before)  # bootstrap intervals included (repr: NaN equals NaN)


def _mode_contract() -> BudgetContract:
    modes = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}
    return BudgetConfig(tiers_tokens=SPEC.tiers_tokens, tolerance=0.25, modes=modes).contract()


def test_effort_modes_add_one_request_per_problem_and_share_mode() -> None:
    budgeted = PromptTemplate("u", "{problem} in {budget_tokens} tokens")
    problems = [{"problem_id": f"p{i}", "problem": f"q{i}", "answer": "1", "meta": "{}", "grader": "math"}
                for i in range(3)]  # fmt: skip
    contract = _mode_contract()
    rows = eval_requests("b", problems, ["sft"], (16, 128), budgeted, budgeted, None, contract)["sft"]
    effort = [r for r in rows if r["mode"] == EvalMode.EFFORT]
    assert [(r["problem_id"], r["effort"]) for r in effort] == [(f"p{i}", m) for i in range(3) for m in ("low", "high")]
    assert effort[0]["prompt"][0]["content"] == contract.render("q0", effort="low")
    assert all(r["budget_tokens"] == 0 for r in effort)
    # the tier mode `medium` is the tier-32 budget rows: 32 joins the grid
    assert sorted({r["budget_tokens"] for r in rows if r["mode"] == EvalMode.BUDGET}) == [16, 32, 128]
    assert len({prepared(r)["request_id"] for r in rows}) == len(rows)  # the share modes' ids differ
    assert _settings().params(effort[0]).max_new_tokens == 2 * 128 + 24  # as long as the largest tier
    plain = eval_requests("b", problems, ["sft"], (16, 128), budgeted, budgeted)["sft"]
    assert plain == [r for r in rows if r["mode"] == EvalMode.BUDGET and r["budget_tokens"] != 32]
    assert all("effort" not in r for r in plain)  # no modes: the requests as before


def _effort_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(60):
        pid = f"p{i}"
        hard = i % 3 == 0  # a third of the problems fail in every mode: shared difficulty, paired away
        for k in range(2):
            rows.append(_row("sft", EvalMode.EFFORT, 0, pid, not hard, 100 + k, effort="high"))
            rows.append(_row("sft", EvalMode.EFFORT, 0, pid, not hard and i % 2 == 0, 25, effort="low"))
            rows.append(_row("sft", EvalMode.BUDGET, 32, pid, not hard and rng.random() < 0.9, 30))
    return rows


def test_mode_table_measures_each_mode_against_high_with_a_paired_interval() -> None:
    rows = _effort_rows(random.Random(0))
    rows.append(_row("sft", EvalMode.EFFORT, 0, "p1", True, 9999, effort="low", error="boom"))  # left out
    table = {m["effort"]: m for m in mode_table(rows, _mode_contract(), bootstrap_samples=400)}
    assert list(table) == ["low", "medium", "high"]
    high, low, medium = table["high"], table["low"], table["medium"]
    assert high["mean_reasoning_tokens"] == pytest.approx(100.5) and high["token_reduction"] == 0.0
    assert high["accuracy_change"] == 0.0 and high["accuracy_change_ci_low"] == high["accuracy_change_ci_high"] == 0.0
    assert low["token_reduction"] == pytest.approx(1 - 25 / 100.5)
    assert low["accuracy"] == pytest.approx(20 / 60) and high["accuracy"] == pytest.approx(40 / 60)
    assert low["accuracy_change"] == pytest.approx(-20 / 60) and low["paired_problems"] == 60
    assert low["accuracy_change_ci_low"] < -20 / 60 < low["accuracy_change_ci_high"] < 0
    assert medium["tier_tokens"] == 32 and medium["share"] is None and medium["generations"] == 120
    assert medium["mean_reasoning_tokens"] == 30.0
    assert mode_table(rows, BudgetConfig(tiers_tokens=SPEC.tiers_tokens).contract()) == []
    metrics = summarize(rows, SPEC, bootstrap_samples=50)
    efforts = {m["effort"]: m for m in metrics if m["mode"] == EvalMode.EFFORT}
    assert set(efforts) == {"low", "high"} and efforts["low"]["errors"] == 1  # one metrics row per share mode
    assert recompute_accuracy(rows)[("sft", "b", EvalMode.EFFORT, 0, "low")] == efforts["low"]["accuracy"]
    assert all(m["effort"] is None for m in metrics if m["mode"] != EvalMode.EFFORT)
    markdown = render_markdown("t", metrics, {}, list(table.values()))
    assert "## Effort modes" in markdown and "| b | sft | low | share 0.25 | 25.0 | 75.1% |" in markdown
    assert "| b | sft | medium | tier 32 |" in markdown
    assert "| b | effort(sft) |" not in markdown  # effort rows are in the mode table, not the budget table
    assert "Effort modes" not in render_markdown("t", metrics, {})


class _Words:
    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


class _Answers:
    """An engine answering every request with one short closed trace, recording the limits it was given."""

    model = backend = "scripted"

    def __init__(self) -> None:
        self.limits: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.limits += [r.params.max_new_tokens for r in requests]
        text = "<think>\na b c\n</think>\n\\boxed{1}"
        return [GenerationResult(r.request_id, (Completion(text, "stop", 9),), 0) for r in requests]

    def close(self) -> None:
        return None


def test_an_effort_request_generates_rows_of_its_mode() -> None:
    problems = [{"problem_id": "p0", "problem": "q0", "answer": "1", "meta": "{}", "grader": "math"}]
    budgeted = PromptTemplate("u", "{problem} in {budget_tokens} tokens")
    rows = eval_requests("b", problems, ["sft"], (16,), budgeted, budgeted, None, _mode_contract())["sft"]
    engine = _Answers()
    out, _ = evaluate_batch(engine, _Words(), rows, _settings(samples_per_problem=1))
    generated = [g for group in out for g in group]
    effort = [g for g in generated if g["mode"] == EvalMode.EFFORT]
    assert sorted(g["effort"] for g in effort) == ["high", "low"] and all(g["correct"] for g in effort)
    assert sorted(engine.limits) == [2 * 16 + 24, 2 * 32 + 24, 2 * 128 + 24, 2 * 128 + 24]
    table = pa.Table.from_pylist(generated, schema=schemas.GENERATIONS)
    assert table.column("effort").null_count == 2  # the budget rows (16 and the tier mode's 32)


def test_metrics_report_the_leak_rate_and_the_answer_length() -> None:
    rows = [
        _row("sft", EvalMode.BUDGET, 32, "p1", True, 32, answer_tokens=10, leaked=False),
        _row("sft", EvalMode.BUDGET, 32, "p2", True, 32, answer_tokens=300, leaked=True),
        _row("sft", EvalMode.BUDGET, 32, "p3", False, 32, answer_tokens=0, leaked=False, closed=False),
        _row("sft", EvalMode.BUDGET, 32, "p4", False, 0, answer_tokens=0, leaked=False, error="too long"),
        _row("sft", EvalMode.BUDGET, 64, "p1", True, 64),  # written before verdicts had these columns
    ]
    metrics = {m["budget_tokens"]: m for m in summarize(rows, SPEC, bootstrap_samples=20)}
    assert metrics[32]["leak_rate"] == pytest.approx(1 / 3)  # the failed request is left out
    assert metrics[32]["mean_answer_tokens"] == pytest.approx(310 / 3)
    assert math.isnan(metrics[64]["leak_rate"]) and math.isnan(metrics[64]["mean_answer_tokens"])
    table = pa.Table.from_pylist(list(metrics.values()), schema=schemas.METRICS)
    assert table.column("leak_rate").to_pylist()[0] == pytest.approx(1 / 3)
    assert "| leaked | answer tokens |" in render_markdown("r", list(metrics.values()), {})
    assert "33.3%" in render_markdown("r", list(metrics.values()), {})
