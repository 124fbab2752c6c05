"""Teacher sampling: problems -> requests -> graded traces, with the gold trace of each problem marked."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import TokenCounter, parse_think
from bard_core.engine import ChatMessage, Engine, GenerationRequest, GenerationResult, SamplingParams, Usage
from bard_core.grading import grade
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
) -> list[dict[str, Any]]:
    """One row per sample (a failed request leaves one row carrying the error); gold marked per problem."""
    rows: list[dict[str, Any]] = []
    for problem, result in zip(problems, results, strict=True):
        meta = json.loads(problem["meta"])
        if result.error is not None:
            rows.append(_error_row(problem["problem_id"], teacher, result.error))
            continue
        parsed = [parse_think(c.text) for c in result.completions]
        lengths = counter.count_many([p.reasoning or "" for p in parsed])
        problem_rows = []
        for idx, (completion, think, length) in enumerate(zip(result.completions, parsed, lengths, strict=True)):
            graded = grade(think.final, problem["answer"], meta.get("grader", "math"), meta)
            problem_rows.append(
                {
                    "problem_id": problem["problem_id"],
                    "sample_idx": idx,
                    "teacher": teacher,
                    "reasoning": think.reasoning,
                    "final": think.final,
                    "pred_answer": graded.pred_answer,
                    "correct": graded.correct,
                    "reasoning_tokens": length if think.reasoning is not None else 0,
                    "finish_reason": completion.finish_reason,
                    "gen_tokens": completion.completion_tokens,
                    "is_gold": False,
                    "error": None,
                }
            )
        # Only a correct answer after a closed, non-empty think block can be trained on.
        candidates = [
            _Trace(r["sample_idx"], r["reasoning_tokens"])
            for r, think in zip(problem_rows, parsed, strict=True)
            if r["correct"] and think.closed and think.reasoning
        ]
        gold = select_gold(str(problem["problem_id"]), candidates, selection)
        if gold is not None:
            problem_rows[gold.sample_idx]["is_gold"] = True
        rows.extend(problem_rows)
    return rows


def _error_row(problem_id: str, teacher: str, error: str) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "sample_idx": 0,
        "teacher": teacher,
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
) -> tuple[list[dict[str, Any]], Usage]:
    """Sample, grade and select gold for a batch of problems (the unit of work of one engine replica)."""
    results = engine.generate(teacher_requests(problems, prompt, params))
    usage = Usage()
    usage.add(results)
    return traces_from_results(problems, results, counter, engine.model, selection), usage
