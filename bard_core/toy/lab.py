"""The lab families of the toy world: problems whose solution is S sequential steps, so that how much of
the computation a trace writes out decides how hard each token is for the student.

``running_sum`` asks for the sum of S numbers. Written out in full, the solution keeps a running total
and adds one number per line *by columns*: ``185+38: 5+8=13, 8+3+1=12, 1+1=2, so 223.`` Every token of
that line is a one-digit fact or a copy, which a small transformer learns. A tighter rendering drops the
column work (``185+38=223.``: a two-digit addition in one token run) and, tighter still, merges several
numbers into one line (``185+38+47=270.``) up to the one-liner that states the total. That is what an LLM
compressor does to a chain of thought (it merges steps and drops verification), and it is why a small
budget asks the student for more computation per token: accuracy falls with the budget because the
trace has less room to compute in, not because anything is hidden.

Problems are drawn by a seeded generator per (source seed, family, split); the split of a problem is a
function of its content (a hash bucket of the canonical problem), so the held-out split is disjoint from
training by construction, whatever seeds or sizes the sources use. Grading is exact integer match.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LAB_TASK_KEY = "toy_task"  # meta key of a lab problem (reasoning-gym problems carry "rg_task")
TEST_SHARE = 0.1  # share of each family's problem space that belongs to the held-out split

RUNNING_SUM_DEFAULTS: dict[str, int] = {"min_terms": 3, "max_terms": 5, "min_digits": 1, "max_digits": 2}


def problem_space_size(difficulty: Mapping[str, int]) -> int:
    """Distinct running_sum problems for these knobs (ordered terms), for the docs and a test."""
    k = {**RUNNING_SUM_DEFAULTS, **difficulty}
    per_term = sum(9 * 10 ** (d - 1) for d in range(k["min_digits"], k["max_digits"] + 1))
    return sum(per_term**n for n in range(k["min_terms"], k["max_terms"] + 1))


def canonical(terms: Sequence[int]) -> str:
    return "+".join(str(t) for t in terms)


def split_of(terms: Sequence[int]) -> str:
    """``test`` for a fixed ``TEST_SHARE`` of the problem space (by content hash), ``train`` otherwise."""
    digest = hashlib.sha256(f"running_sum|{canonical(terms)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < TEST_SHARE else "train"


def _draw_term(rng: random.Random, min_digits: int, max_digits: int) -> int:
    digits = rng.randint(min_digits, max_digits)
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def running_sum_problems(count: int, seed: int, split: str, difficulty: Mapping[str, int]) -> Iterator[dict[str, Any]]:
    """``count`` distinct problems of ``split`` (each a problem-row dict with ``meta`` as a dict)."""
    k = {**RUNNING_SUM_DEFAULTS, **difficulty}
    if not 2 <= k["min_terms"] <= k["max_terms"] or not 1 <= k["min_digits"] <= k["max_digits"] <= 4:
        raise ValueError(
            f"running_sum difficulty {dict(difficulty)}: need 2 <= min_terms <= max_terms, 1 <= digits <= 4"
        )
    space = problem_space_size(difficulty)
    share = TEST_SHARE if split == "test" else 1 - TEST_SHARE
    if count > 0.5 * space * share:
        raise ValueError(
            f"running_sum: {count} {split} problems asked of a space of about {int(space * share)}; "
            "raise max_terms or max_digits, or ask for fewer"
        )
    rng = random.Random(f"running_sum|{seed}|{split}")
    seen: set[str] = set()
    while len(seen) < count:
        n = rng.randint(k["min_terms"], k["max_terms"])
        terms = [_draw_term(rng, k["min_digits"], k["max_digits"]) for _ in range(n)]
        key = canonical(terms)
        if key in seen or split_of(terms) != split:
            continue
        seen.add(key)
        index = len(seen) - 1
        yield {
            "problem_id": f"toy-running_sum-{split}-s{seed}-{index:06d}",
            "source": "toy/running_sum",
            "problem": "What is " + " + ".join(map(str, terms)) + "?",
            "answer": str(sum(terms)),
            "meta": {LAB_TASK_KEY: "running_sum", "terms": terms},
        }


# --------------------------------------------------------------------------- the solution, step by step


@dataclass(frozen=True)
class SumStep:
    """Adding ``added`` (one or more numbers) to the running total ``total_before``."""

    total_before: int
    added: tuple[int, ...]
    total_after: int


def sum_steps(terms: Sequence[int], group: int = 1, slip: tuple[int, int] | None = None) -> list[SumStep]:
    """The running-total steps, ``group`` numbers per step; ``slip=(step, delta)`` adds ``delta`` to one
    step's result (the teacher's mistake), which then propagates."""
    total = terms[0]
    steps: list[SumStep] = []
    rest = list(terms[1:])
    for i in range(0, len(rest), group):
        added = tuple(rest[i : i + group])
        after = total + sum(added)
        if slip is not None and slip[0] == len(steps):
            after += slip[1]
        steps.append(SumStep(total, added, after))
        total = after
    return steps


def column_work(left: int, right: int) -> str:
    """``5+8=13, 8+3+1=12, 1+1=2``: column sums from the units up, with the carry as a third addend.
    A column where only ``left`` has a digit and nothing is carried is skipped (it is copied). Negative
    operands (a teacher's slip can make a total negative) have no column form: the sum is stated."""
    if left < 0 or right < 0:
        return f"{left}+{right}={left + right}"
    parts = []
    carry, a, b = 0, left, right
    while a or b or carry:
        da, db = a % 10, b % 10
        if b or carry:
            addends = [str(da), str(db)] if b else [str(da)]
            if carry:
                addends.append(str(carry))
            total = da + db + carry
            parts.append("+".join(addends) + f"={total}")
            carry = total // 10
        a, b = a // 10, b // 10
    return ", ".join(parts)


def render_step(step: SumStep, detail: bool) -> str:
    lhs = "+".join(str(x) for x in (step.total_before, *step.added))
    if detail and len(step.added) == 1:
        return f"{lhs}: {column_work(step.total_before, step.added[0])}, so {step.total_after}."
    return f"{lhs}={step.total_after}."


def renderings(terms: Sequence[int]) -> list[str]:
    """Every rendering of the solution the compressor may choose, shortest first: the one-liner; steps of
    g numbers (g from S-1 down to 2); one number per step with the column work on the last k steps
    (k = 0..S-1); and those with a restatement line and a final check. Dense enough that one lands near
    most budgets between the one-liner and the full column work."""
    n_steps = len(terms) - 1
    bodies: list[list[str]] = []
    for group in range(n_steps, 1, -1):
        bodies.append([render_step(s, False) for s in sum_steps(terms, group)])
    singles = sum_steps(terms, 1)
    for k in range(n_steps + 1):
        bodies.append([render_step(s, i >= n_steps - k) for i, s in enumerate(singles)])
    total = sum(terms)
    restate = "Add " + ", ".join(map(str, terms)) + "."
    check = f"Check: {total}-{terms[-1]}={total - terms[-1]}."
    out = []
    for before, after in (([], []), ([restate], []), ([restate], [check])):
        out += ["\n".join([*before, *body, *after]) for body in bodies]
    return sorted(dict.fromkeys(out), key=len)


_DOUBLE_CHECKS = ("Let me double-check: {after}-{last}={before}. Yes.", "Double-check: {before}+{last}={after}, right.")
_DETOURS = (
    "Hmm, I could add the big numbers first, but going in order is safer.",
    "Wait, let me make sure I copied the numbers correctly. Yes.",
)


def teacher_text(terms: Sequence[int], rng: random.Random, detour_rate: float, slip: tuple[int, int] | None) -> str:
    """The teacher's chain of thought: every step with its column work, plus redundancy (a restatement,
    double-checks, detours and a final recount) that a compressor may drop."""
    lines = ["I need the sum of " + ", ".join(map(str, terms)) + ".", f"Start with {terms[0]}."]
    for step in sum_steps(terms, 1, slip):
        lines.append(render_step(step, True))
        if rng.random() < 0.4 * detour_rate:
            fmt = rng.choice(_DOUBLE_CHECKS)
            lines.append(fmt.format(after=step.total_after, last=step.added[0], before=step.total_before))
        if rng.random() < 0.15 * detour_rate:
            lines.append(rng.choice(_DETOURS))
    value = sum_steps(terms, 1, slip)[-1].total_after
    lines.append(f"So the total is {value}.")
    return "\n".join(lines)


def lab_value(meta: Mapping[str, Any], slip: tuple[int, int] | None = None) -> int:
    return sum_steps(list(meta["terms"]), 1, slip)[-1].total_after


def lab_steps(meta: Mapping[str, Any]) -> int:
    return len(meta["terms"]) - 1
