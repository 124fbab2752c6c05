"""Compression of gold traces to budget tiers, with validation and retries with feedback.

A compressed trace is valid only if its reasoning length (student tokens) is within the tier's
tolerance **and** its final answer still verifies against the reference. A failed attempt is retried
with feedback that gives the measured length and what was wrong, up to ``max_attempts``; then the
tier is recorded as rejected with the reason of its last attempt. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter
from bard_core.engine import ChatMessage, Engine, GenerationRequest, SamplingParams, Usage
from bard_core.judge import Verdict, verdicts
from bard_core.prompting import PromptTemplate

USER_FIELDS = frozenset({"problem", "reasoning", "final", "source_tokens", "budget_tokens", "min_tokens", "max_tokens"})
FEEDBACK_FIELDS = frozenset({"measured_tokens", "min_tokens", "max_tokens", "budget_tokens", "issue"})

ISSUES = {
    "too_long": "it is too long",
    "too_short": "it is too short",
    "answer_lost": "its final answer no longer matches the problem's answer",
    "unparseable": "it does not follow the <think> ... </think> format",
}


@dataclass(frozen=True)
class CompressorPrompts:
    system: PromptTemplate
    user: PromptTemplate
    feedback: PromptTemplate


@dataclass(frozen=True)
class CompressionJob:
    """One gold trace to compress to one tier."""

    problem_id: str
    problem: str
    answer: str
    grader: str  # a GraderKind value (the problems column)
    meta: Mapping[str, Any]
    reasoning: str
    final: str
    source_tokens: int
    budget_tokens: int


@dataclass
class _Attempt:
    messages: list[ChatMessage]
    count: int = 0
    last_reasoning: str | None = None
    last_final: str | None = None
    last_tokens: int | None = None
    last_kept: bool = False
    last_reason: str | None = None  # None once an attempt is valid


def jobs_for(
    gold_traces: Sequence[Mapping[str, Any]], problems: Mapping[str, Mapping[str, Any]], spec: BudgetSpec
) -> list[CompressionJob]:
    """Every gold trace to every tier strictly below its own length."""
    jobs = []
    for trace in gold_traces:
        problem = problems[trace["problem_id"]]
        for tier in spec.tiers_below(int(trace["reasoning_tokens"])):
            jobs.append(
                CompressionJob(
                    problem_id=str(trace["problem_id"]),
                    problem=str(problem["problem"]),
                    answer=str(problem["answer"]),
                    grader=str(problem["grader"]),
                    meta=json.loads(problem["meta"]),
                    reasoning=str(trace["reasoning"]),
                    final=str(trace["final"]),
                    source_tokens=int(trace["reasoning_tokens"]),
                    budget_tokens=tier,
                )
            )
    return jobs


def _first_messages(job: CompressionJob, prompts: CompressorPrompts, spec: BudgetSpec) -> list[ChatMessage]:
    low, high = spec.bounds(job.budget_tokens)
    user = prompts.user.render(
        problem=job.problem,
        reasoning=job.reasoning,
        final=job.final,
        source_tokens=job.source_tokens,
        budget_tokens=job.budget_tokens,
        min_tokens=low,
        max_tokens=high,
    )
    return [{"role": "system", "content": prompts.system.render()}, {"role": "user", "content": user}]


def _request(job: CompressionJob, state: _Attempt, spec: BudgetSpec, params: SamplingParams) -> GenerationRequest:
    low, high = spec.bounds(job.budget_tokens)
    previous = None
    if state.last_reasoning is not None:
        previous = {
            "reasoning": state.last_reasoning,
            "measured_tokens": state.last_tokens,
            "reason": state.last_reason,
        }
    return GenerationRequest(
        request_id=f"{job.problem_id}@{job.budget_tokens}#{state.count}",
        messages=list(state.messages),
        params=SamplingParams(1, params.temperature, params.top_p, params.max_new_tokens, params.seed + state.count),
        metadata={
            "role": "compressor",
            "problem_meta": dict(job.meta),
            "budget_tokens": job.budget_tokens,
            "min_tokens": low,
            "max_tokens": high,
            "previous": previous,
        },
    )


def _reject_reason(job: CompressionJob, verdict: Verdict, spec: BudgetSpec) -> str | None:
    """Why an attempt is not a valid compression (None: it is): well-formed, inside the band, answer kept."""
    if not verdict.parsed:
        return "unparseable"
    if verdict.over:
        return "too_long"
    if verdict.reasoning_tokens < spec.bounds(job.budget_tokens)[0]:
        return "too_short"
    return None if verdict.correct else "answer_lost"


def compress_batch(
    engine: Engine,
    counter: TokenCounter,
    jobs: Sequence[CompressionJob],
    prompts: CompressorPrompts,
    spec: BudgetSpec,
    params: SamplingParams,
    max_attempts: int,
) -> tuple[list[dict[str, Any]], Usage]:
    """Compress a batch of jobs; all pending jobs of one attempt go to the engine as one batch."""
    usage = Usage()
    states = [_Attempt(messages=_first_messages(job, prompts, spec)) for job in jobs]
    pending = list(range(len(jobs)))
    for _ in range(max_attempts):
        if not pending:
            break
        results = engine.generate([_request(jobs[i], states[i], spec, params) for i in pending])
        usage.add(results)
        texts = [r.completions[0].text if r.error is None and r.completions else "" for r in results]
        judged = verdicts(
            texts,
            [jobs[i].answer for i in pending],
            [jobs[i].grader for i in pending],
            [jobs[i].meta for i in pending],
            [jobs[i].budget_tokens for i in pending],
            spec,
            counter,
        )
        still = []
        for i, result, text, verdict in zip(pending, results, texts, judged, strict=True):
            job, state = jobs[i], states[i]
            state.count += 1
            reason = f"engine_error: {result.error}" if result.error else _reject_reason(job, verdict, spec)
            state.last_kept = result.error is None and verdict.parsed and verdict.correct
            state.last_reason = reason
            state.last_reasoning, state.last_final = verdict.reasoning, verdict.final
            # No output at all has no length; any output has the judge's (a run-on: its generated length).
            state.last_tokens = None if result.error else verdict.reasoning_tokens
            if reason is None:
                continue
            still.append(i)
            if reason in ISSUES:
                state.messages += _feedback(job, text, verdict.reasoning_tokens, reason, prompts, spec)
        pending = still
    rows = [_row(job, state, engine.model) for job, state in zip(jobs, states, strict=True)]
    return rows, usage


def _feedback(
    job: CompressionJob, text: str, tokens: int, reason: str, prompts: CompressorPrompts, spec: BudgetSpec
) -> list[ChatMessage]:
    """The failed attempt and what was wrong with it, for the next attempt to improve on."""
    low, high = spec.bounds(job.budget_tokens)
    feedback = prompts.feedback.render(
        measured_tokens=tokens, min_tokens=low, max_tokens=high, budget_tokens=job.budget_tokens, issue=ISSUES[reason]
    )
    return [{"role": "assistant", "content": text}, {"role": "user", "content": feedback}]


def _row(job: CompressionJob, state: _Attempt, compressor: str) -> dict[str, Any]:
    return {
        "problem_id": job.problem_id,
        "budget_tokens": job.budget_tokens,
        "source_tokens": job.source_tokens,
        "reasoning": state.last_reasoning,
        "final": state.last_final,
        "reasoning_tokens": state.last_tokens,
        "answer_kept": state.last_kept,
        "valid": state.last_reason is None,
        "attempts": state.count,
        "reject_reason": state.last_reason,
        "compressor": compressor,
    }
