"""The RL reward: ``correctness × budget fidelity``, with TRL's reward-function signature.

Multiplicative on purpose: an additive length bonus teaches short wrong answers, while here a wrong or
unparseable answer earns nothing however well it fits the budget. An output without a closed, non-empty
``<think>`` block is unparseable and scores 0. ``RewardKind.ADDITIVE`` (``correctness + fidelity``, the
ablation of ``rl.reward``) exists to show why; it changes only how the components combine (both are 0
for an unparseable output, so it too scores 0). Judging is ``judge``'s (the reward calls the evaluation's
verdict), so the logged lengths follow its rule: an unclosed output counts at its generated length.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter
from bard_core.judge import Verdict, judge, length_summary, verdicts


class RewardKind(str, Enum):
    """How correctness and fidelity combine into the RL reward (``rl.reward``)."""

    MULTIPLICATIVE = "multiplicative"  # correct x fidelity: BARD's reward
    ADDITIVE = "additive"  # correct + fidelity: the ablation that pays for length alone


COMBINE: dict[RewardKind, Callable[[float, float], float]] = {
    RewardKind.MULTIPLICATIVE: lambda correct, fidelity: correct * fidelity,
    RewardKind.ADDITIVE: lambda correct, fidelity: correct + fidelity,
}
"""(correctness, fidelity) -> reward, per kind."""


@dataclass(frozen=True)
class RewardBreakdown:
    correct: float
    fidelity: float
    reward: float
    reasoning_tokens: int  # the judge's length: an unclosed output counts at its generated length
    parsed: bool
    over: bool

    @classmethod
    def of(cls, verdict: Verdict, kind: RewardKind = RewardKind.MULTIPLICATIVE) -> RewardBreakdown:
        correct = 1.0 if verdict.correct and verdict.parsed else 0.0
        reward = COMBINE[kind](correct, verdict.fidelity)
        return cls(correct, verdict.fidelity, reward, verdict.reasoning_tokens, verdict.parsed, verdict.over)


def score(
    text: str,
    answer: str,
    budget_tokens: int,
    spec: BudgetSpec,
    reasoning_tokens: int,
    grader: str = "math",
    meta: Mapping[str, Any] | None = None,
    kind: RewardKind = RewardKind.MULTIPLICATIVE,
) -> RewardBreakdown:
    """Score one completion whose reasoning length (``judge.counted_text``, student tokens) is counted."""
    return RewardBreakdown.of(judge(text, answer, grader, meta, budget_tokens, spec, reasoning_tokens), kind)


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``, plain ones as str."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


class BudgetReward:
    """A TRL reward function: ``reward_funcs=[BudgetReward(spec, counter)]`` (``kind``: how the components
    combine, multiplicative unless the additive ablation is asked for).

    Reads the dataset columns ``answer``, ``budget_tokens`` and (optional) ``grader``/``meta``, and logs each
    component through TRL's ``log_metric``: correctness, fidelity, the product, the parse rate, the mean
    reasoning length per budget and the fraction of outputs over budget.
    """

    __name__ = "budget_reward"  # TRL names reward columns and metrics after it

    def __init__(self, spec: BudgetSpec, counter: TokenCounter, kind: RewardKind = RewardKind.MULTIPLICATIVE) -> None:
        self.spec = spec
        self.counter = counter
        self.kind = kind

    def breakdown(
        self,
        completions: Sequence[Any],
        answer: Sequence[str],
        budget_tokens: Sequence[int],
        grader: Sequence[str] | None = None,
        meta: Sequence[str] | None = None,
    ) -> list[RewardBreakdown]:
        texts = [completion_text(c) for c in completions]
        graders = list(grader) if grader else ["math"] * len(texts)
        metas = [json.loads(m) for m in meta] if meta else [None] * len(texts)
        judged = verdicts(texts, answer, graders, metas, budget_tokens, self.spec, self.counter)
        return [RewardBreakdown.of(v, self.kind) for v in judged]

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
        "budget/over_budget": statistics.fmean(1.0 if s.over else 0.0 for s in scored),
    }
    per_budget: dict[int, list[int]] = defaultdict(list)
    for s, b in zip(scored, budgets, strict=True):
        per_budget[int(b)].append(s.reasoning_tokens)
    for budget, lengths in sorted(per_budget.items()):
        metrics[f"budget/length_at_{budget}"] = length_summary(lengths, budget, spec)["mean_tokens"]
    return metrics
