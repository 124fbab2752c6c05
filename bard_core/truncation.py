"""The truncation baseline: the model reasons unconstrained; at each budget of the grid an output that
already fits (closed, reasoning within the budget) is kept as it is, any other has its reasoning cut at
the budget and closed with a forced ``</think>``, and the model answers from there.

A truncated row's reasoning length is the cut (``min(reasoning, budget)`` tokens), not a recount of the
decoded cut, so that the baseline sits exactly at its budget. The kept and forced rows are judged by
``judge`` like every other generation row (a forced row's answer counted under the student tokenizer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bard_core.budget import THINK_CLOSE, THINK_OPEN, BudgetSpec, TokenCounter
from bard_core.engine import GenerationRequest, GenerationResult, SamplingParams
from bard_core.judge import NO_OUTPUT_COLUMNS, answer_text, counted_text, judge, verdict_columns
from bard_core.schemas import EvalMode


class TokenCodec(TokenCounter, Protocol):
    """A token counter that can also cut text at a token count (the student tokenizer)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class Cut:
    """An output cut at one budget, waiting for its forced answer."""

    row: dict[str, Any]  # the generation row so far: identity columns and the cut's reasoning length
    request: GenerationRequest


def truncation_prefix(reasoning_ids: Sequence[int], budget_tokens: int, decode: Callable[[list[int]], str]) -> str:
    """The assistant prefix of the truncation baseline: the first ``budget_tokens`` reasoning tokens, then
    a forced ``</think>`` so that the model must answer now. ``decode`` maps token ids to text."""
    cut = decode(list(reasoning_ids[:budget_tokens])).strip()
    return f"{THINK_OPEN}\n{cut}\n{THINK_CLOSE}\n\n"


def truncation_cuts(
    request: Mapping[str, Any],
    generated: Sequence[dict[str, Any]],
    budgets_tokens: Sequence[int],
    codec: TokenCodec,
    params: SamplingParams,
) -> tuple[list[dict[str, Any]], list[Cut]]:
    """The unconstrained rows, plus per budget: the row itself when it already fits, else a cut whose
    forced-answer request continues the reasoning cut at the budget. ``request`` is the eval request the
    generations answer (``evaluation.prepared``: a request row with its id and parsed meta)."""
    kept, cuts = list(generated), []
    for gen in generated:
        if gen["error"] is not None:
            continue
        for budget in budgets_tokens:
            base = {**gen, "mode": EvalMode.TRUNCATED.value, "budget_tokens": budget}
            if gen["closed"] and gen["reasoning_tokens"] <= budget:
                kept.append(base)
                continue
            ids = codec.encode(counted_text(gen["text"]).removeprefix(THINK_OPEN).strip())
            prefix = truncation_prefix(ids, budget, codec.decode)
            request_id = f"{request['request_id']}|cut{budget}|{gen['sample_idx']}"
            identity = {k: base[k] for k in ("model", "benchmark", "problem_id", "mode", "budget_tokens", "sample_idx")}
            cuts.append(
                Cut(
                    {**identity, "reasoning_tokens": min(len(ids), budget)},
                    GenerationRequest(request_id, request["prompt"], params, student_metadata(request), prefix=prefix),
                )
            )
    return kept, cuts


def finish_cut(
    request: Mapping[str, Any], cut: Cut, answer: GenerationResult, spec: BudgetSpec, counter: TokenCounter
) -> dict[str, Any]:
    """The truncated row: the cut prefix plus the forced answer, judged at the cut's length (``counter``
    counts the answer's student tokens)."""
    prefix = cut.request.prefix
    if answer.error is not None:
        return {
            **cut.row,
            "text": prefix,
            **NO_OUTPUT_COLUMNS,
            "completion_tokens": 0,
            "finish_reason": "error",
            "error": answer.error,
        }
    completion = answer.completions[0]
    text = prefix + completion.text
    length, budget = int(cut.row["reasoning_tokens"]), int(cut.row["budget_tokens"])
    (answer_tokens,) = counter.count_many([answer_text(text)])
    verdict = judge(
        text, request["answer"], request["grader"], request["problem_meta"], budget, spec, length, answer_tokens
    )
    return {
        **cut.row,
        "text": text,
        **verdict_columns(verdict),
        "error": None,
        "completion_tokens": completion.completion_tokens,
        "finish_reason": completion.finish_reason,
    }


def student_metadata(request: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluated model's request metadata. Real engines ignore it; the toy oracle reads the problem from
    it (answering as its teacher does), so the evaluation runs on the oracle too."""
    return {"role": "student", "problem_meta": request["problem_meta"]}
