"""Gold-trace selection: which correct teacher sample of a problem is compressed and trained on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol


class GoldSelection(str, Enum):
    SHORTEST_CORRECT = "shortest_correct"
    LONGEST_CORRECT = "longest_correct"
    FIRST_CORRECT = "first_correct"
    RANDOM_CORRECT = "random_correct"


class Candidate(Protocol):
    @property
    def sample_idx(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...


def _stable_random(problem_id: str, candidates: Sequence[Candidate]) -> Candidate:
    # Hash-based, so the choice is reproducible and independent of row order.
    return min(candidates, key=lambda c: hashlib.sha256(f"{problem_id}|{c.sample_idx}".encode()).digest())


SELECTORS: dict[GoldSelection, Callable[[str, Sequence[Candidate]], Candidate]] = {
    GoldSelection.SHORTEST_CORRECT: lambda _, cs: min(cs, key=lambda c: (c.reasoning_tokens, c.sample_idx)),
    GoldSelection.LONGEST_CORRECT: lambda _, cs: max(cs, key=lambda c: (c.reasoning_tokens, -c.sample_idx)),
    GoldSelection.FIRST_CORRECT: lambda _, cs: min(cs, key=lambda c: c.sample_idx),
    GoldSelection.RANDOM_CORRECT: _stable_random,
}


def select_gold(problem_id: str, correct: Sequence[Candidate], how: GoldSelection) -> Candidate | None:
    """The gold trace among a problem's *correct*, parseable samples (None when there is none)."""
    return SELECTORS[how](problem_id, correct) if correct else None
