"""One verdict on one output, judged once: every stage that asks "is this output right, and does it fit
its budget?" calls ``judge`` (compression validity, the RL reward, sampling's ``correct``, the evaluation
row and the probe), and every summary of lengths against budgets calls ``length_summary``.

Rules, stated once:

- **Closed**: the output has a ``</think>`` (see ``budget.parse_think``). Only a closed output is graded:
  an output that never closes its think block ran on, has no answer (``pred_answer`` None) and is wrong.
- **Parsed** (well-formed): closed with a non-empty reasoning. Only a parsed output can earn a reward,
  count as a valid compression or be chosen as a gold trace.
- **Reasoning length** (student tokens): the reasoning when a think block was found, closed or not;
  **otherwise the whole generation**. An output that never opens or closes its think block is therefore
  counted at its generated length, so a run-on counts as over budget instead of as a zero-length success.
  The RL logs (``budget/length_at_*``, ``budget/over_budget``), the probe and the evaluation all report
  this length; a compression attempt records it as its ``reasoning_tokens``.
- **Fit** (for a budget > 0): ``within`` and ``over`` come from ``BudgetSpec`` (``over``: past the upper
  bound of the accepted band); ``fidelity`` is the RL fidelity score, 0 for an output that is not parsed.
  A budget of 0 (the unconstrained reference) has no fit: fidelity 0, neither within nor over.
- **Answer length** (student tokens): ``answer_tokens`` counts the text after ``</think>``
  (``parse_think(text).final``); 0 for an output that never closes (it has no answer).
- **Leaked**: closed, with an answer longer than ``BudgetSpec.leak_answer_tokens`` (``budget.leak_answer_tokens``):
  reasoning that ran on past ``</think>`` into the answer, where the budget does not see it (ThinkDial,
  arXiv 2508.18773). Reported as ``leak_rate`` and, with ``rl.leak_factor``, penalised in the RL reward.
- **Reward**: ``correct × fidelity``, which is 0 for anything not parsed (see ``rewards``).

Counting the answer too means a second tokenization per output (of its answer, usually much shorter than
its reasoning); ``verdicts`` batches both counts in one ``count_many`` call.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter, parse_think, relative_deviation
from bard_core.grading import GraderKind, grade


@dataclass(frozen=True)
class Verdict:
    reasoning: str | None  # None when no think block was found at all
    final: str
    closed: bool
    parsed: bool
    reasoning_tokens: int
    answered: bool  # closed, and the grader found an answer it could read
    pred_answer: str | None
    correct: bool
    fidelity: float
    within: bool
    over: bool
    answer_tokens: int  # student tokens after </think>; 0 when unclosed
    leaked: bool  # closed, and answer_tokens > BudgetSpec.leak_answer_tokens

    @property
    def unparsed(self) -> bool:
        """Closed, but no readable answer: wrong, and counted separately in evaluation."""
        return self.closed and not self.answered

    @property
    def reward(self) -> float:
        return (1.0 if self.correct and self.parsed else 0.0) * self.fidelity


def counted_text(text: str) -> str:
    """The part of an output whose tokens are its reasoning length (the module's length rule)."""
    think = parse_think(text)
    return think.reasoning if think.reasoning is not None else text


def answer_text(text: str) -> str:
    """The part of an output whose tokens are its answer length: after ``</think>``; empty when unclosed."""
    think = parse_think(text)
    return think.final if think.closed else ""


def judge(
    text: str,
    answer: str,
    grader: GraderKind | str,
    meta: Mapping[str, Any] | None,
    budget_tokens: int,
    spec: BudgetSpec,
    reasoning_tokens: int,
    answer_tokens: int,
) -> Verdict:
    """Judge one output whose reasoning length (``counted_text``) and answer length (``answer_text``),
    student tokens, are already counted: counting is batched by the callers (``verdicts``). Never raises
    on the model's text."""
    think = parse_think(text)
    parsed = think.closed and bool(think.reasoning)
    graded = grade(think.final, answer, grader, meta) if think.closed else None
    fits = budget_tokens > 0
    return Verdict(
        reasoning=think.reasoning,
        final=think.final,
        closed=think.closed,
        parsed=parsed,
        reasoning_tokens=reasoning_tokens,
        answered=graded is not None and graded.parsed,
        pred_answer=graded.pred_answer if graded is not None else None,
        correct=graded is not None and graded.correct,
        fidelity=spec.fidelity(reasoning_tokens, budget_tokens) if parsed and fits else 0.0,
        within=fits and spec.within(reasoning_tokens, budget_tokens),
        over=fits and spec.over(reasoning_tokens, budget_tokens),
        answer_tokens=answer_tokens if think.closed else 0,
        leaked=spec.leaked(think.closed, answer_tokens),
    )


def verdicts(
    texts: Sequence[str],
    answers: Sequence[str],
    graders: Sequence[GraderKind | str],
    metas: Sequence[Mapping[str, Any] | None],
    budgets: Sequence[int],
    spec: BudgetSpec,
    counter: TokenCounter,
) -> list[Verdict]:
    """Judge a batch, counting every reasoning length and every answer length in one tokenizer call."""
    counts = counter.count_many([*(counted_text(t) for t in texts), *(answer_text(t) for t in texts)])
    lengths, answer_lengths = counts[: len(texts)], counts[len(texts) :]
    return [
        judge(t, a, g, m, int(b), spec, n, k)
        for t, a, g, m, b, n, k in zip(texts, answers, graders, metas, budgets, lengths, answer_lengths, strict=True)
    ]


def verdict_columns(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the judged columns of a generation row: ``schemas.GENERATIONS`` stores the first seven
    (its writer keeps only the schema's columns); the probe's table also keeps ``parsed``, ``fidelity`` and
    ``reward``."""
    return {
        "reasoning_tokens": verdict.reasoning_tokens,
        "answer_tokens": verdict.answer_tokens,
        "leaked": verdict.leaked,
        "closed": verdict.closed,
        "unparsed": verdict.unparsed,
        "pred_answer": verdict.pred_answer,
        "correct": verdict.correct,
        "parsed": verdict.parsed,
        "fidelity": verdict.fidelity,
        "reward": verdict.reward,
    }


# A request that produced no output: nothing to judge, scored wrong (and counted as an error).
NO_OUTPUT_COLUMNS: dict[str, Any] = {
    "answer_tokens": 0,
    "leaked": False,
    "closed": False,
    "unparsed": False,
    "pred_answer": None,
    "correct": False,
    "parsed": False,
    "fidelity": 0.0,
    "reward": 0.0,
}


def _fraction(flags: Sequence[bool]) -> float:
    return statistics.fmean(1.0 if f else 0.0 for f in flags) if flags else math.nan


def length_summary(lengths: Sequence[int], budget_tokens: int, spec: BudgetSpec) -> dict[str, float]:
    """How a group of reasoning lengths follows one budget: the figures every summary reports (evaluation
    metrics, probe, RL logs). NaN for an empty group or a budget of 0 (nothing to measure against)."""
    fit = list(lengths) if budget_tokens > 0 else []
    return {
        "mean_tokens": statistics.fmean(lengths) if lengths else math.nan,
        "median_tokens": float(statistics.median(lengths)) if lengths else math.nan,
        "mean_relative_deviation": statistics.fmean(relative_deviation(n, budget_tokens) for n in fit)
        if fit
        else math.nan,
        "within_tolerance": _fraction([spec.within(n, budget_tokens) for n in fit]),
        "over_budget": _fraction([spec.over(n, budget_tokens) for n in fit]),
    }
