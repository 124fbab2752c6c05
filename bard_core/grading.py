"""Answer extraction and grading, resolved by grader kind in one registry.

- ``math``: the last ``\\boxed{...}`` of the final answer, checked with math-verify against the reference.
- ``choice``: a multiple-choice letter (boxed, or "answer is (X)").
- ``reasoning_gym``: the boxed answer scored by the reasoning-gym task's own scorer (toy world).
An output without a parseable answer is graded wrong and flagged ``parsed=False``, never raised.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

_MATH_TIMEOUT_S = 5
# math-verify warns on every call made with timeouts off; that is a deliberate choice off the main thread.
logging.getLogger("math_verify").setLevel(logging.ERROR)


class GraderKind(str, Enum):
    MATH = "math"
    CHOICE = "choice"
    REASONING_GYM = "reasoning_gym"
    INTEGER = "integer"


@dataclass(frozen=True)
class Grade:
    pred_answer: str | None
    correct: bool

    @property
    def parsed(self) -> bool:
        return self.pred_answer is not None


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None when absent."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start : i - 1].strip()
    return None


def _grade_math(final: str, reference: str, meta: Mapping[str, Any]) -> Grade:
    from math_verify import parse, verify  # sympy-heavy; imported on first use

    pred = extract_boxed(final)
    if pred is None:
        return Grade(None, False)
    # math-verify's timeouts use SIGALRM, which only works on the main thread; elsewhere (Prefect task
    # threads) they must be off or every call raises.
    timeout_s = _MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(f"\\boxed{{{reference}}}", parsing_timeout=timeout_s)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout_s)
    ok = bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=timeout_s))
    return Grade(pred, ok)


_CHOICE_PATTERNS = (
    re.compile(r"answer\s*(?:is|:)?\s*\(?([A-J])\)?\b", re.IGNORECASE),
    re.compile(r"^\(?([A-J])\)?[.)]?\s*$"),
)


def _grade_choice(final: str, reference: str, meta: Mapping[str, Any]) -> Grade:
    boxed = extract_boxed(final)
    candidates = [boxed] if boxed is not None else []
    candidates.append(final.strip())
    for text in candidates:
        for pattern in _CHOICE_PATTERNS:
            match = pattern.search(text)
            if match:
                letter = match.group(1).upper()
                return Grade(letter, letter == reference.strip().upper())
    return Grade(None, False)


@lru_cache(maxsize=32)
def _rg_scorer(task: str) -> Callable[[str | None, dict[str, Any]], float]:
    import reasoning_gym

    return reasoning_gym.create_dataset(task, size=1, seed=0).score_answer  # type: ignore[no-any-return]


def _grade_reasoning_gym(final: str, reference: str, meta: Mapping[str, Any]) -> Grade:
    pred = extract_boxed(final)
    if pred is None:
        return Grade(None, False)
    task = meta.get("rg_task")
    if not task:
        raise ValueError("reasoning_gym grading needs meta['rg_task']; the problem was not made by the toy world")
    entry = {
        "question": meta.get("question", ""),
        "answer": reference,
        "metadata": meta.get("rg_metadata", {}),
    }
    return Grade(pred, _rg_scorer(str(task))(pred, entry) >= 1.0)


def _grade_integer(final: str, reference: str, meta: Mapping[str, Any]) -> Grade:
    """The boxed answer, read as an integer, equals the reference (the toy world's lab families)."""
    pred = extract_boxed(final)
    if pred is None:
        return Grade(None, False)
    try:
        return Grade(pred, int(pred.strip().replace(",", "")) == int(reference))
    except ValueError:
        return Grade(pred, False)


GRADERS: dict[GraderKind, Callable[[str, str, Mapping[str, Any]], Grade]] = {
    GraderKind.MATH: _grade_math,
    GraderKind.CHOICE: _grade_choice,
    GraderKind.REASONING_GYM: _grade_reasoning_gym,
    GraderKind.INTEGER: _grade_integer,
}


def grade(final: str, reference: str, grader: GraderKind | str, meta: Mapping[str, Any] | None = None) -> Grade:
    """Grade the final answer text (the part after ``</think>``) against the reference answer."""
    return GRADERS[GraderKind(grader)](final, reference, meta or {})
