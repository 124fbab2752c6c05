"""Teacher sampling: problems -> requests -> graded traces, with the gold trace of each problem marked."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter
from bard_core.engine import ChatMessage, Engine, GenerationRequest, GenerationResult, SamplingParams, Usage
from bard_core.judge import Verdict, verdicts
from bard_core.prompting import PromptTemplate
from bard_core.selection import GoldSelection, select_gold

TEACHER_FIELDS = frozenset({"problem"})


@dataclass(frozen=True)
class TeacherPrompt:
    user: PromptTemplate
    system: PromptTemplate | None = None

    def messages(self, problem: str) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system.render(problem=problem)})
        messages.append({"role": "user", "content": self.user.render(problem=problem)})
        return messages


def teacher_requests(
    problems: Sequence[Mapping[str, Any]], prompt: TeacherPrompt, params: SamplingParams
) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=str(p["problem_id"]),
            messages=prompt.messages(str(p["problem"])),
            params=params,
            metadata={"role": "teacher", "problem_meta": json.loads(p["meta"])},
        )
        for p in problems
    ]


@dataclass(frozen=True)
class _Trace:
    sample_idx: int
    reasoning_tokens: int


def traces_from_results(
    problems: Sequence[Mapping[str, Any]],
    results: Sequence[GenerationResult],
    counter: TokenCounter,
    teacher: str,
    selection: GoldSelection,
    author: str = "teacher",
) -> list[dict[str, Any]]:
    """One row per sample (a failed request leaves one row carrying the error); gold marked per problem."""
    rows: list[dict[str, Any]] = []
    for problem, result in zip(problems, results, strict=True):
        if result.error is not None:
            rows.append(_error_row(problem["problem_id"], teacher, author, result.error))
            continue
        judged = _judged(problem, [c.text for c in result.completions], counter)
        problem_rows = []
        for idx, (completion, verdict) in enumerate(zip(result.completions, judged, strict=True)):
            problem_rows.append(
                {
                    "problem_id": problem["problem_id"],
                    "sample_idx": idx,
                    "teacher": teacher,
                    "author": author,
                    "reasoning": verdict.reasoning,
                    "final": verdict.final,
                    "pred_answer": verdict.pred_answer,
                    "correct": verdict.correct,
                    "reasoning_tokens": verdict.reasoning_tokens,
                    "finish_reason": completion.finish_reason,
                    "gen_tokens": completion.completion_tokens,
                    "is_gold": False,
                    "error": None,
                }
            )
        # Only a correct answer after a closed, non-empty think block can be trained on.
        candidates = [
            _Trace(r["sample_idx"], r["reasoning_tokens"])
            for r, verdict in zip(problem_rows, judged, strict=True)
            if verdict.correct and verdict.parsed
        ]
        gold = select_gold(str(problem["problem_id"]), candidates, selection)
        if gold is not None:
            problem_rows[gold.sample_idx]["is_gold"] = True
        rows.extend(problem_rows)
    return rows


def _judged(problem: Mapping[str, Any], texts: Sequence[str], counter: TokenCounter) -> list[Verdict]:
    """The teacher's samples of one problem, judged (no budget: teachers think freely)."""
    meta, n = json.loads(problem["meta"]), len(texts)
    return verdicts(texts, [problem["answer"]] * n, [problem["grader"]] * n, [meta] * n, [0] * n, _NO_BUDGET, counter)


# Sampling has no budget to fit; the judge needs a contract all the same (its fit fields are unused).
_NO_BUDGET = BudgetSpec((1,))


def _error_row(problem_id: str, teacher: str, author: str, error: str) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "sample_idx": 0,
        "teacher": teacher,
        "author": author,
        "reasoning": None,
        "final": "",
        "pred_answer": None,
        "correct": False,
        "reasoning_tokens": 0,
        "finish_reason": "error",
        "gen_tokens": 0,
        "is_gold": False,
        "error": error,
    }


def sample_batch(
    engine: Engine,
    counter: TokenCounter,
    problems: Sequence[Mapping[str, Any]],
    prompt: TeacherPrompt,
    params: SamplingParams,
    selection: GoldSelection,
    author: str = "teacher",
) -> tuple[list[dict[str, Any]], Usage]:
    """Sample, grade and select gold for a batch of problems (the unit of work of one engine replica);
    ``author`` says whose traces these are (the teacher's, or BRIDGE's amplifying assistant's)."""
    results = engine.generate(teacher_requests(problems, prompt, params))
    usage = Usage()
    usage.add(results)
    return traces_from_results(problems, results, counter, engine.model, selection, author), usage
