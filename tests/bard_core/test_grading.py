from __future__ import annotations

import json

import pytest

from bard_core.grading import GraderKind, extract_boxed, grade
from bard_core.toy.world import ToyFamily, toy_rows


def test_extract_boxed_takes_the_last_balanced_box() -> None:
    assert extract_boxed("first \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("\\boxed{unbalanced") is None
    assert extract_boxed("no box") is None


@pytest.mark.parametrize(
    ("final", "reference", "correct"),
    [
        ("The answer is \\boxed{72}.", "72", True),
        ("\\boxed{72.0}", "72", True),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("\\boxed{71}", "72", False),
    ],
)
def test_math_grading(final: str, reference: str, correct: bool) -> None:
    assert grade(final, reference, GraderKind.MATH).correct is correct


def test_unparseable_answers_are_wrong_and_flagged() -> None:
    result = grade("I think it is 72", "72", GraderKind.MATH)
    assert not result.correct and not result.parsed


def test_choice_grading() -> None:
    assert grade("\\boxed{C}", "C", "choice").correct
    assert grade("The answer is (b).", "B", "choice").correct
    assert not grade("\\boxed{A}", "B", "choice").correct
    assert not grade("no idea", "B", "choice").parsed


def test_reasoning_gym_scorer_grades_toy_problems() -> None:
    row = toy_rows(1, 0, [(ToyFamily.LEG_COUNTING, 1.0, {})])[0]
    meta = json.loads(json.dumps(row.meta))
    assert grade(f"\\boxed{{{row.answer}}}", row.answer, GraderKind.REASONING_GYM, meta).correct
    assert not grade(f"\\boxed{{{int(row.answer) + 1}}}", row.answer, GraderKind.REASONING_GYM, meta).correct
