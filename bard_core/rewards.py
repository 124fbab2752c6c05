"""The RL reward: ``correctness × budget fidelity``, with TRL's reward-function signature.

Multiplicative on purpose: an additive length bonus teaches short wrong answers, while here a wrong or
unparseable answer earns nothing however well it fits the budget. An output without a closed, non-empty
``<think>`` block is unparseable and scores 0. ``RewardKind.ADDITIVE`` (``correctness + fidelity``, the
ablation of ``rl.reward``) exists to show why; it changes only how the components combine (both are 0
for an unparseable output, so it too scores 0). Judging is ``judge``'s (the reward calls the evaluation's
verdict), so the logged lengths follow its rule: an unclosed output counts at its generated length.

``leak_factor`` (``rl.leak_factor``, off by default) multiplies the reward of an output whose answer leaked
(longer than ``BudgetSpec.leak_answer_tokens`` after ``</think>``): without it, a policy under a budget can
move its reasoning past ``</think>`` where the budget does not count it (ThinkDial, arXiv 2508.18773).
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
    answer_tokens: int = 0  # the judge's answer length: student tokens after </think>
    leaked: bool = False

    @classmethod
    def of(
        cls, verdict: Verdict, kind: RewardKind = RewardKind.MULTIPLICATIVE, leak_factor: float | None = None
    ) -> RewardBreakdown:
        """The verdict's reward; ``leak_factor`` (None: no penalty) multiplies it when the answer leaked."""
        correct = 1.0 if verdict.correct and verdict.parsed else 0.0
        reward = COMBINE[kind](correct, verdict.fidelity)
        if leak_factor is not None and verdict.leaked:
            reward *= leak_factor
        return cls(
            correct,
            verdict.fidelity,
            reward,
            verdict.reasoning_tokens,
            verdict.parsed,
            verdict.over,
            verdict.answer_tokens,
            verdict.leaked,
        )


def score(
    text: str,
    answer: str,
    budget_tokens: int,
    spec: BudgetSpec,
    reasoning_tokens: int,
    grader: str = "math",
    meta: Mapping[str, Any] | None = None,
    kind: RewardKind = RewardKind.MULTIPLICATIVE,
    answer_tokens: int = 0,
    leak_factor: float | None = None,
) -> RewardBreakdown:
    """Score one completion whose reasoning length (``judge.counted_text``) and answer length
    (``judge.answer_text``), student tokens, are counted."""
    verdict = judge(text, answer, grader, meta, budget_tokens, spec, reasoning_tokens, answer_tokens)
    return RewardBreakdown.of(verdict, kind, leak_factor)


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``, plain ones as str."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


class BudgetReward:
    """A TRL reward function: ``reward_funcs=[BudgetReward(spec, counter)]`` (``kind``: how the components
    combine, multiplicative unless the additive ablation is asked for; ``leak_factor``: what a leaked
    output's reward is multiplied by, None for no penalty).

    Reads the dataset columns ``answer``, ``budget_tokens`` and (optional) ``grader``/``meta``, and logs each
    component through TRL's ``log_metric``: correctness, fidelity, the product, the parse rate, the mean
    reasoning length per budget, the fraction of outputs over budget, the leak rate and the mean answer length.
    """

    __name__ = "budget_reward"  # TRL names reward columns and metrics after it

    def __init__(
        self,
        spec: BudgetSpec,
        counter: TokenCounter,
        kind: RewardKind = RewardKind.MULTIPLICATIVE,
        leak_factor: float | None = None,
    ) -> None:
        self.spec = spec
        self.counter = counter
        self.kind = kind
        self.leak_factor = leak_factor

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
        return [RewardBreakdown.of(v, self.kind, self.leak_factor) for v in judged]

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
    """Batch summaries, each reward component separately, plus length per budget, over-budget share, leak rate
    and mean answer length (student tokens after ``</think>``; 0 for an unclosed output)."""
    if not scored:
        return {}
    metrics = {
        "budget/correct": statistics.fmean(s.correct for s in scored),
        "budget/fidelity": statistics.fmean(s.fidelity for s in scored),
        "budget/reward": statistics.fmean(s.reward for s in scored),
        "budget/parsed": statistics.fmean(1.0 if s.parsed else 0.0 for s in scored),
        "budget/over_budget": statistics.fmean(1.0 if s.over else 0.0 for s in scored),
        "budget/leak_rate": statistics.fmean(1.0 if s.leaked else 0.0 for s in scored),
        "budget/answer_tokens": statistics.fmean(s.answer_tokens for s in scored),
    }
    per_budget: dict[int, list[int]] = defaultdict(list)
    for s, b in zip(scored, budgets, strict=True):
        per_budget[int(b)].append(s.reasoning_tokens)
    for budget, lengths in sorted(per_budget.items()):
        metrics[f"budget/length_at_{budget}"] = length_summary(lengths, budget, spec)["mean_tokens"]
    return metrics
