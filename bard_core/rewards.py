"""The RL reward: ``correctness × budget fidelity``, with TRL's reward-function signature.

Multiplicative on purpose: an additive length bonus teaches short wrong answers, while here a wrong or
unparseable answer earns nothing however well it fits the budget. An output without a closed, non-empty
``<think>`` block is unparseable and scores 0.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter, parse_think
from bard_core.grading import grade


@dataclass(frozen=True)
class RewardBreakdown:
    correct: float
    fidelity: float
    reward: float
    reasoning_tokens: int
    parsed: bool


def score(
    text: str,
    answer: str,
    budget_tokens: int,
    spec: BudgetSpec,
    reasoning_tokens: int,
    grader: str = "math",
    meta: Mapping[str, Any] | None = None,
) -> RewardBreakdown:
    """Score one completion whose reasoning length (student tokens) is already counted."""
    think = parse_think(text)
    if not think.closed or not think.reasoning:
        return RewardBreakdown(0.0, 0.0, 0.0, reasoning_tokens, parsed=False)
    correct = 1.0 if grade(think.final, answer, grader, meta).correct else 0.0
    fidelity = spec.fidelity(reasoning_tokens, budget_tokens)
    return RewardBreakdown(correct, fidelity, correct * fidelity, reasoning_tokens, parsed=True)


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``, plain ones as str."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


class BudgetReward:
    """A TRL reward function: ``reward_funcs=[BudgetReward(spec, counter)]``.

    Reads the dataset columns ``answer``, ``budget_tokens`` and (optional) ``grader``/``meta``, and logs each
    component through TRL's ``log_metric``: correctness, fidelity, the product, the parse rate, the mean
    reasoning length per budget and the fraction of outputs over budget.
    """

    __name__ = "budget_reward"  # TRL names reward columns and metrics after it

    def __init__(self, spec: BudgetSpec, counter: TokenCounter) -> None:
        self.spec = spec
        self.counter = counter

    def breakdown(
        self,
        completions: Sequence[Any],
        answer: Sequence[str],
        budget_tokens: Sequence[int],
        grader: Sequence[str] | None = None,
        meta: Sequence[str] | None = None,
    ) -> list[RewardBreakdown]:
        texts = [completion_text(c) for c in completions]
        lengths = self.counter.count_many([parse_think(t).reasoning or "" for t in texts])
        return [
            score(
                text,
                answer[i],
                int(budget_tokens[i]),
                self.spec,
                lengths[i],
                grader[i] if grader else "math",
                json.loads(meta[i]) if meta else None,
            )
            for i, text in enumerate(texts)
        ]

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        answer: Sequence[str],
        budget_tokens: Sequence[int],
        grader: Sequence[str] | None = None,
        meta: Sequence[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        scored = self.breakdown(completions, answer, budget_tokens, grader, meta)
        if log_metric is not None:
            for name, value in reward_metrics(scored, budget_tokens, self.spec).items():
                log_metric(name, value)
        return [s.reward for s in scored]


def reward_metrics(scored: Sequence[RewardBreakdown], budgets: Sequence[int], spec: BudgetSpec) -> dict[str, float]:
    """Batch summaries, each reward component separately, plus length per budget and over-budget share."""
    if not scored:
        return {}
    metrics = {
        "budget/correct": statistics.fmean(s.correct for s in scored),
        "budget/fidelity": statistics.fmean(s.fidelity for s in scored),
        "budget/reward": statistics.fmean(s.reward for s in scored),
        "budget/parsed": statistics.fmean(1.0 if s.parsed else 0.0 for s in scored),
        "budget/over_budget": statistics.fmean(
            1.0 if s.reasoning_tokens > spec.bounds(int(b))[1] else 0.0 for s, b in zip(scored, budgets, strict=True)
        ),
    }
    per_budget: dict[int, list[int]] = defaultdict(list)
    for s, b in zip(scored, budgets, strict=True):
        per_budget[int(b)].append(s.reasoning_tokens)
    for budget, lengths in sorted(per_budget.items()):
        metrics[f"budget/length_at_{budget}"] = statistics.fmean(lengths)
    return metrics
