"""The budget contract, in one place, shared by compression, SFT, RL and evaluation.

- A budget is a count of reasoning tokens under the *student's* tokenizer: the text between
  ``<think>`` and ``</think>``, stripped, encoded without special tokens.
- The student sees the budget in the user turn, rendered by one prompt file (``budget_user.txt``).
- The assistant turn is ``<think>\\n{reasoning}\\n</think>\\n\\n{final}``.
- Fidelity is ``target`` (two-sided) or ``cap`` (one-sided), each with a relative tolerance ``tol``: a
  length is *accepted* (a valid compression) inside ``b·(1±tol)`` (target) or up to ``b·(1+tol)`` (cap).
  The RL fidelity score is 1 at the budget (target) or anywhere up to it (cap), falls linearly to 0.5 at the
  edge of the accepted band and to 0 at twice the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from bard_core.prompting import PromptTemplate

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
# The fields of the student's user-turn prompt files: budgeted (``budget.user_template``) and budget-free
# (``budget.agnostic_template``); stages check their files against these when they start.
USER_TEMPLATE_FIELDS = frozenset({"problem", "budget_tokens"})
AGNOSTIC_TEMPLATE_FIELDS = frozenset({"problem"})


class FidelityShape(str, Enum):
    TARGET = "target"
    CAP = "cap"


def _linear_fall(excess_tokens: float, budget: int, tolerance: float) -> float:
    """1 at no excess, 0.5 at the edge of the accepted band (tolerance x budget), 0 at twice that."""
    if excess_tokens <= 0:
        return 1.0
    if tolerance <= 0:
        return 0.0
    return max(0.0, 1.0 - excess_tokens / (2.0 * tolerance * budget))


def _target_fidelity(length: int, budget: int, tolerance: float) -> float:
    # Peaked at the budget, so that RL keeps pulling lengths towards it inside the accepted band too.
    return _linear_fall(abs(length - budget), budget, tolerance)


def _cap_fidelity(length: int, budget: int, tolerance: float) -> float:
    # Anything up to the budget is fine; past it the reward falls like the target's.
    return _linear_fall(length - budget, budget, tolerance)


FIDELITY_FUNCTIONS: dict[FidelityShape, Callable[[int, int, float], float]] = {
    FidelityShape.TARGET: _target_fidelity,
    FidelityShape.CAP: _cap_fidelity,
}


class BudgetError(ValueError):
    """A budget outside the configured tier range, or a malformed tier list."""


@dataclass(frozen=True)
class BudgetSpec:
    """Tiers, fidelity shape and tolerance: everything that decides whether a length fits a budget; and
    the leak threshold: an answer (the text after ``</think>``) longer than ``leak_answer_tokens`` student
    tokens counts as leaked reasoning (``budget.leak_answer_tokens``)."""

    tiers_tokens: tuple[int, ...]
    shape: FidelityShape = FidelityShape.TARGET
    tolerance: float = 0.2
    leak_answer_tokens: int = 256

    def leaked(self, closed: bool, answer_tokens: int) -> bool:
        """Reasoning leaked past ``</think>``: a closed output whose answer is longer than the threshold."""
        return closed and answer_tokens > self.leak_answer_tokens

    def __post_init__(self) -> None:
        if not self.tiers_tokens or list(self.tiers_tokens) != sorted(set(self.tiers_tokens)):
            raise BudgetError(f"tiers must be unique and ascending, got {list(self.tiers_tokens)}")
        if self.tiers_tokens[0] <= 0:
            raise BudgetError(f"tiers must be positive token counts, got {list(self.tiers_tokens)}")
        if self.leak_answer_tokens < 1:
            raise BudgetError(f"leak_answer_tokens must be a positive token count, got {self.leak_answer_tokens}")

    def bounds(self, budget_tokens: int) -> tuple[int, int]:
        """Inclusive [min, max] reasoning length accepted for a budget."""
        high = math.floor(budget_tokens * (1.0 + self.tolerance))
        if self.shape is FidelityShape.CAP:
            return 0, high
        return math.ceil(budget_tokens * (1.0 - self.tolerance)), high

    def within(self, length: int, budget_tokens: int) -> bool:
        low, high = self.bounds(budget_tokens)
        return low <= length <= high

    def over(self, length: int, budget_tokens: int) -> bool:
        """Over budget: longer than the accepted band allows (the one definition every metric uses)."""
        return length > self.bounds(budget_tokens)[1]

    def fidelity(self, length: int, budget_tokens: int) -> float:
        return FIDELITY_FUNCTIONS[self.shape](length, budget_tokens, self.tolerance)

    def tiers_below(self, length: int) -> tuple[int, ...]:
        """Tiers a trace of ``length`` reasoning tokens can be compressed to (strictly shorter)."""
        return tuple(t for t in self.tiers_tokens if t < length)

    def check_budget(self, budget_tokens: int) -> int:
        low, high = self.tiers_tokens[0], self.tiers_tokens[-1]
        if not low <= budget_tokens <= high:
            raise BudgetError(
                f"budget {budget_tokens} is outside the tier range [{low}, {high}]; "
                f"use one of {list(self.tiers_tokens)} or widen budget.tiers_tokens"
            )
        return budget_tokens


def relative_deviation(length: int, budget_tokens: int) -> float:
    """``|length - budget| / budget``: how far a length is from its budget, as a share of the budget."""
    return abs(length - budget_tokens) / budget_tokens


def render_user(template: PromptTemplate, problem: str, budget_tokens: int) -> str:
    """The user turn the student sees: the problem plus its thinking budget."""
    return template.render(problem=problem.strip(), budget_tokens=budget_tokens)


def render_assistant(reasoning: str, final: str) -> str:
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{final.strip()}"


@dataclass(frozen=True)
class ThinkParse:
    """An output split at ``</think>``. ``reasoning`` is None when no think block was found at all."""

    reasoning: str | None
    final: str
    closed: bool


def parse_think(text: str) -> ThinkParse:
    body = text.lstrip()
    opened = body.startswith(THINK_OPEN)
    if opened:
        body = body[len(THINK_OPEN) :]
    head, sep, tail = body.partition(THINK_CLOSE)
    if sep:
        # Some chat templates pre-fill "<think>" in the prompt, so a bare "</think>" still closes it.
        return ThinkParse(reasoning=head.strip(), final=tail.strip(), closed=True)
    if opened:
        return ThinkParse(reasoning=head.strip(), final="", closed=False)
    return ThinkParse(reasoning=None, final=text.strip(), closed=False)


class TokenCounter(Protocol):
    """Counts tokens under the student's tokenizer (the budget unit)."""

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


class HFTokenCounter:
    """Token counter over a transformers tokenizer (the toy BPE is saved as one too)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenCounter:
        from transformers import AutoTokenizer  # heavy import; only where counting happens

        return cls(AutoTokenizer.from_pretrained(str(path)))

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer([t.strip() for t in texts], add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids)))
