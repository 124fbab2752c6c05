"""The truncation baseline on the toy oracle, without Ray: the whole `evaluate_batch` path of a truncation
request (unconstrained samples, the cut at every budget, the forced answers, the verdicts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from bard_core.budget import BudgetSpec, HFTokenCounter, parse_think
from bard_core.engine import Completion, GenerationRequest, GenerationResult
from bard_core.evaluation import (
    EvalSettings,
    TruncationPrompt,
    eval_requests,
    evaluate_batch,
)
from bard_core.prompting import load_prompt
from bard_core.schemas import EvalMode
from bard_core.toy.oracle import OracleEngine, OracleSettings
from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer
from bard_core.toy.world import ToyFamily, solve, toy_rows

SPEC = BudgetSpec((16, 32, 64, 128), "target", 0.25)
GRID = (16, 32, 400)  # two budgets every oracle trace overruns, one it always fits


@lru_cache(maxsize=1)
def counter() -> HFTokenCounter:
    corpus = toy_corpus(40, 99, list(SPEC.tiers_tokens), load_prompt("budget_user.txt"))
    return HFTokenCounter(train_toy_tokenizer(corpus, 512))


class AnsweringOracle:
    """The oracle as the evaluated student; it cannot continue a prefix, so a forced answer is written here
    from the problem (right, or wrong for every third request, to see both verdicts)."""

    def __init__(self) -> None:
        self.oracle = OracleEngine(OracleSettings(error_rate=0.0))  # every unconstrained answer right
        self.model, self.backend = self.oracle.model, self.oracle.backend
        self.forced: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        plain = [r for r in requests if not r.prefix]
        answered = dict(zip([r.request_id for r in plain], self.oracle.generate(plain), strict=True))
        for r in requests:
            if r.prefix:
                self.forced.append(r)
                value = solve(r.metadata["problem_meta"]).value
                value = value if len(self.forced) % 3 else f"{value}1"  # every third one wrong
                text = f"The answer is \\boxed{{{value}}}."
                answered[r.request_id] = GenerationResult(r.request_id, (Completion(text, "stop", 6),), 0)
        return [answered[r.request_id] for r in requests]

    def close(self) -> None:
        return None


def _problems(n: int) -> list[dict[str, Any]]:
    rows = toy_rows(n, 5, [(f, 1.0, {}) for f in ToyFamily if not f.is_lab])
    return [
        {"problem_id": r.problem_id, "problem": r.problem, "answer": r.answer,
         "grader": "reasoning_gym", "meta": json.dumps(r.meta)}
        for r in rows
    ]  # fmt: skip


def _settings(k: int) -> EvalSettings:
    return EvalSettings("agnostic", SPEC, GRID, k, 0.7, 1.0, 0, 1.0, 48, 4096, 48)


def test_truncation_baseline_cuts_at_every_budget_and_forces_an_answer() -> None:
    budgeted, plain = load_prompt("budget_user.txt"), load_prompt("plain_user.txt")
    requests = eval_requests("toy", _problems(6), [], GRID, budgeted, plain, TruncationPrompt("agnostic"))["agnostic"]
    assert {r["mode"] for r in requests} == {EvalMode.TRUNCATION} and len(requests) == 6
    engine, k = AnsweringOracle(), 2
    out, usage = evaluate_batch(engine, counter(), requests, _settings(k))
    assert len(out) == len(requests) and usage.requests == len(requests) + len(engine.forced)
    overruns = 0
    for request, rows in zip(requests, out, strict=True):
        free = [r for r in rows if r["mode"] == EvalMode.UNCONSTRAINED]
        cut = [r for r in rows if r["mode"] == EvalMode.TRUNCATED]
        assert len(free) == k and len(cut) == k * len(GRID)  # every sample at every budget
        assert all(r["closed"] and r["correct"] and r["error"] is None for r in free)  # the oracle is right
        for row in cut:
            source = free[row["sample_idx"]]
            assert row["reasoning_tokens"] <= row["budget_tokens"]
            if row["budget_tokens"] >= source["reasoning_tokens"]:  # already fits: kept as it is
                assert row["text"] == source["text"] and row["reasoning_tokens"] == source["reasoning_tokens"]
                continue
            overruns += 1
            think = parse_think(row["text"])
            assert row["reasoning_tokens"] == row["budget_tokens"]  # the cut, at exactly the budget
            assert think.closed and row["text"].startswith("<think>\n")
            assert counter().count(think.reasoning or "") <= row["budget_tokens"] + 2  # decode/re-encode slack
            assert row["correct"] == (think.final == f"The answer is \\boxed{{{request['answer']}}}.")
            assert row["answer_tokens"] == counter().count(think.final) > 0 and not row["leaked"]  # the forced answer
    assert {r["budget_tokens"] for o in out for r in o if r["mode"] == EvalMode.TRUNCATED} == set(GRID)
    # One forced answer per (sample, overrun budget), greedy and short; some right, some wrong.
    assert overruns == len(engine.forced) >= len(requests) * k * 2
    assert all(r.params.n == 1 and r.params.temperature == 0.0 and r.params.max_new_tokens == 48 for r in engine.forced)
    assert all(r.prefix.endswith("</think>\n\n") for r in engine.forced)
    verdicts = [r["correct"] for o in out for r in o if r["mode"] == EvalMode.TRUNCATED and r["budget_tokens"] == 16]
    assert True in verdicts and False in verdicts
