"""BRIDGE's zero-teacher-cost scoring: k local samples of the teacher assistant per problem, judged once.

The TA sees the teacher's own prompt (it is asked what the teacher would be asked), and its samples are
graded by the one judge (``bard_core.judge``, through ``bard_core.sampling``). Per problem we keep the
parsed answers, their entropy (disagreement: how unsure the TA is), the mean token entropy where the engine
reports it, and the pass rate (the reference answers are known: BRIDGE is for labelled data), which is
logged but not part of the default difficulty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.bridge.scores import answer_entropy_bits
from bard_core.budget import TokenCounter
from bard_core.engine import Engine, GenerationResult, SamplingParams, Usage
from bard_core.sampling import TeacherPrompt, teacher_requests, traces_from_results
from bard_core.selection import GoldSelection


def _mean_token_entropy(result: GenerationResult) -> float | None:
    values = [c.mean_token_entropy for c in result.completions]
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def score_batch(
    engine: Engine,
    counter: TokenCounter,
    problems: Sequence[Mapping[str, Any]],
    prompt: TeacherPrompt,
    params: SamplingParams,
) -> tuple[list[dict[str, Any]], Usage]:
    """One score row per problem (``schemas.SELECTION``'s scoring columns); a failed request scores nothing
    and carries its error (the problem can still be chosen by a strategy that does not need its score)."""
    results = engine.generate(teacher_requests(problems, prompt, params))
    usage = Usage()
    usage.add(results)
    traces = traces_from_results(problems, results, counter, engine.model, GoldSelection.SHORTEST_CORRECT)
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for trace in traces:
        by_problem.setdefault(str(trace["problem_id"]), []).append(trace)
    rows = []
    for problem, result in zip(problems, results, strict=True):
        pid = str(problem["problem_id"])
        if result.error is not None:
            rows.append(_unscored(pid, result.error))
            continue
        samples = by_problem[pid]
        answers = [s["pred_answer"] for s in samples]
        rows.append(
            {
                "problem_id": pid,
                "samples": len(samples),
                "answers": answers,
                "answer_entropy_bits": answer_entropy_bits(answers),
                "token_entropy": _mean_token_entropy(result),
                "pass_rate": sum(bool(s["correct"]) for s in samples) / len(samples),
                "error": None,
            }
        )
    return rows, usage


def _unscored(problem_id: str, error: str) -> dict[str, Any]:
    return {
        "problem_id": problem_id,
        "samples": 0,
        "answers": None,
        "answer_entropy_bits": None,
        "token_entropy": None,
        "pass_rate": None,
        "error": error,
    }
