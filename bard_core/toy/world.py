"""The toy world: verifiable arithmetic/word problems from reasoning-gym, with their worked programs.

Each problem carries the reasoning-gym entry in ``meta`` (task, metadata, question) so that it can be
graded by the task's own scorer and solved step by step by the oracle engine. A solution is a small
program of binary operations; evaluating it with a *slip* (one step off by a few units, propagated)
is how the oracle teacher makes realistic mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import zip_longest
from typing import Any

from bard_core.problems import RawRow
from bard_core.toy.lab import LAB_TASK_KEY, RUNNING_SUM_DEFAULTS, running_sum_problems


class ToyFamily(str, Enum):
    CHAIN_SUM = "chain_sum"
    PRODUCTS = "products"
    LEG_COUNTING = "leg_counting"
    RUNNING_SUM = "running_sum"  # a lab family (bard_core.toy.lab): generated here, graded exactly

    @property
    def is_lab(self) -> bool:
        return self in LAB_FAMILIES


LAB_FAMILIES = frozenset({ToyFamily.RUNNING_SUM})


# Difficulty knobs per family (names are reasoning-gym's config fields) and the defaults we use.
DIFFICULTY_DEFAULTS: dict[ToyFamily, dict[str, int]] = {
    ToyFamily.CHAIN_SUM: {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 2},
    ToyFamily.PRODUCTS: {"min_digits": 1, "max_digits": 2},
    ToyFamily.LEG_COUNTING: {"min_animals": 2, "max_animals": 3, "min_instances": 1, "max_instances": 9},
    ToyFamily.RUNNING_SUM: RUNNING_SUM_DEFAULTS,
}


def check_difficulty(family: ToyFamily, difficulty: Mapping[str, int]) -> None:
    unknown = set(difficulty) - set(DIFFICULTY_DEFAULTS[family])
    if unknown:
        raise ValueError(
            f"unknown difficulty knob(s) {sorted(unknown)} for toy family {family.value!r}; "
            f"valid knobs: {sorted(DIFFICULTY_DEFAULTS[family])}"
        )


def generate_entries(family: ToyFamily, size: int, seed: int, difficulty: Mapping[str, int]) -> list[dict[str, Any]]:
    """reasoning-gym entries of a reasoning-gym family."""
    import reasoning_gym

    if family.is_lab:
        raise ValueError(f"{family.value} is a lab family: use family_problems")

    check_difficulty(family, difficulty)
    knobs = {**DIFFICULTY_DEFAULTS[family], **difficulty}
    dataset = reasoning_gym.create_dataset(family.value, size=size, seed=seed, **knobs)
    return [dict(entry) for entry in dataset]


def entry_to_problem(entry: Mapping[str, Any], family: ToyFamily, seed: int, index: int) -> dict[str, Any]:
    """A reasoning-gym entry as a row of the ``problems`` artifact (``meta`` still a dict here)."""
    metadata = {k: v for k, v in entry["metadata"].items() if k != "difficulty"}
    return {
        "problem_id": f"toy-{family.value}-s{seed}-{index:05d}",
        "source": f"toy/{family.value}",
        "problem": entry["question"].strip(),
        "answer": str(entry["answer"]),
        "meta": {
            "rg_task": family.value,
            "rg_metadata": metadata,
            "question": entry["question"],
        },
    }


# --------------------------------------------------------------------------- worked programs


@dataclass(frozen=True)
class Operand:
    """A literal number, or the result of an earlier step (``step`` index)."""

    value: int | None = None
    step: int | None = None
    unit: str = ""


@dataclass(frozen=True)
class Op:
    symbol: str  # one of + - ×
    left: Operand
    right: Operand
    note: str = ""  # e.g. "legs of the 12 chickens"


@dataclass(frozen=True)
class EvaluatedStep:
    left: int
    symbol: str
    right: int
    value: int
    note: str


@dataclass(frozen=True)
class Solution:
    """A worked solution: facts to recall, evaluated steps and the final value."""

    facts: tuple[str, ...]
    steps: tuple[EvaluatedStep, ...]
    expression: str
    restatement: str

    @property
    def value(self) -> int:
        return self.steps[-1].value


def _apply(symbol: str, left: int, right: int) -> int:
    return {"+": left + right, "-": left - right, "×": left * right}[symbol]


def _lit(value: int) -> Operand:
    return Operand(value=value)


def _chain(values: Sequence[int], symbols: Sequence[str], notes: Sequence[str] = ()) -> list[Op]:
    ops = [Op(symbols[0], _lit(values[0]), _lit(values[1]), notes[0] if notes else "")]
    for i, (sym, val) in enumerate(zip(symbols[1:], values[2:], strict=True), start=1):
        ops.append(Op(sym, Operand(step=i - 1), _lit(val), notes[i] if len(notes) > i else ""))
    return ops


def _chain_sum_program(meta: Mapping[str, Any]) -> tuple[list[Op], tuple[str, ...], str]:
    tokens = str(meta["expression"]).split()
    values = [int(t) for t in tokens[0::2]]
    symbols = tokens[1::2]
    return _chain(values, symbols), (), str(meta["expression"])


def _products_program(meta: Mapping[str, Any]) -> tuple[list[Op], tuple[str, ...], str]:
    left, right = (int(x) for x in str(meta["expression"]).split("*"))
    expression = f"{left} × {right}"
    # Long multiplication by place value: one partial product per digit of the right factor, then add.
    places = [(int(d) * 10**p) for p, d in enumerate(reversed(str(abs(right)))) if d != "0"]
    places.reverse()
    if len(places) <= 1:
        return [Op("×", _lit(left), _lit(right))], (), expression
    ops = [Op("×", _lit(left), _lit(part), f"partial product for {part}") for part in places]
    ops.append(Op("+", Operand(step=0), Operand(step=1), "sum of partial products"))
    for i in range(2, len(places)):
        ops.append(Op("+", Operand(step=len(ops) - 1), Operand(step=i), "sum of partial products"))
    return ops, (), expression


def _legs_program(meta: Mapping[str, Any]) -> tuple[list[Op], tuple[str, ...], str]:
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    animals: Mapping[str, int] = meta["animals"]
    facts = tuple(f"A {name} has {ANIMALS[name]} legs." for name in animals)
    ops = [Op("×", _lit(count), _lit(ANIMALS[name]), f"legs of the {count} {name}s") for name, count in animals.items()]
    n = len(ops)
    if n > 1:
        ops.append(Op("+", Operand(step=0), Operand(step=1), "running total"))
        for i in range(2, n):
            ops.append(Op("+", Operand(step=len(ops) - 1), Operand(step=i), "running total"))
    expression = " + ".join(f"{count} × {ANIMALS[name]}" for name, count in animals.items())
    return ops, facts, expression


_PROGRAMS = {
    ToyFamily.CHAIN_SUM: _chain_sum_program,
    ToyFamily.PRODUCTS: _products_program,
    ToyFamily.LEG_COUNTING: _legs_program,
}


def solve(meta: Mapping[str, Any], slip: tuple[int, int] | None = None) -> Solution:
    """Evaluate the problem's program; ``slip=(step, delta)`` adds ``delta`` to one step's result."""
    family = ToyFamily(meta["rg_task"])  # reasoning-gym families only: lab families are solved in toy.lab
    ops, facts, expression = _PROGRAMS[family](meta["rg_metadata"])
    results: list[int] = []
    steps: list[EvaluatedStep] = []
    for i, op in enumerate(ops):
        left = results[op.left.step] if op.left.step is not None else int(op.left.value or 0)
        right = results[op.right.step] if op.right.step is not None else int(op.right.value or 0)
        value = _apply(op.symbol, left, right)
        if slip is not None and slip[0] == i:
            value += slip[1]
        results.append(value)
        steps.append(EvaluatedStep(left, op.symbol, right, value, op.note))
    question = str(meta.get("question", "")).strip()
    restatement = re.sub(r"\s+", " ", question.splitlines()[-1] if question else expression)
    return Solution(facts=facts, steps=tuple(steps), expression=expression, restatement=restatement)


def family_problems(
    family: ToyFamily, count: int, seed: int, difficulty: Mapping[str, int], split: str, id_seed: int | None = None
) -> list[dict[str, Any]]:
    """``count`` problem rows of one family (``meta`` a dict), drawn with ``seed``. Lab families draw only
    problems of ``split`` (their split is a property of the problem); reasoning-gym families draw by seed
    alone and name problems after ``id_seed`` (the source's seed)."""
    if family.is_lab:
        return list(running_sum_problems(count, seed, split, difficulty))
    entries = generate_entries(family, count, seed, difficulty)
    return [entry_to_problem(e, family, seed if id_seed is None else id_seed, i) for i, e in enumerate(entries)]


def is_toy_meta(meta: Mapping[str, Any]) -> bool:
    """Whether a problem's meta is the toy world's (the oracle can solve it)."""
    return "rg_task" in meta or LAB_TASK_KEY in meta


def toy_rows(
    size: int, seed: int, families: Sequence[tuple[ToyFamily, float, Mapping[str, int]]], split: str = "train"
) -> list[RawRow]:
    """``size`` problems split across families by weight, interleaved so that a ``limit`` keeps the mix."""
    total = sum(weight for _, weight, _ in families)
    per_family: list[list[RawRow]] = []
    for index, (family, weight, difficulty) in enumerate(families):
        count = max(1, round(size * weight / total))
        family_seed = seed * 1009 + index  # families must not share a random stream
        problems = family_problems(family, count, family_seed, difficulty, split, id_seed=seed)
        per_family.append(
            [
                RawRow(p["source"], i + 1, p["problem_id"], p["problem"], p["answer"], p["meta"])
                for i, p in enumerate(problems)
            ]
        )
    mixed = [row for group in zip_longest(*per_family) for row in group if row is not None]
    return mixed[:size]
