"""The lab family of the toy world: a problem space large enough, a held-out split disjoint by construction,
solutions whose every rendering states the right total, and an oracle that merges steps at tight budgets."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bard_core.budget import parse_think
from bard_core.engine import GenerationRequest, SamplingParams
from bard_core.grading import GraderKind, grade
from bard_core.problems import normalize_text
from bard_core.recipes import load_config
from bard_core.toy import lab
from bard_core.toy.oracle import OracleEngine, OracleSettings
from bard_core.toy.world import ToyFamily, toy_rows

REPO = Path(__file__).resolve().parents[2]
_STEP = re.compile(r"^(\d+(?:\+\d+)+)(?::.*, so |=)(-?\d+)\.$")


def test_the_toy_recipe_draws_from_a_large_space_with_a_large_disjoint_heldout_split() -> None:
    cfg = load_config(str(REPO / "configs/toy.yaml"), [])
    (train,) = [s for s in cfg.ingest.sources if s.split == "train"]
    (test,) = [s for s in cfg.ingest.sources if s.split == "test"]
    assert lab.problem_space_size(train.families[0].difficulty) >= 50_000
    assert test.size >= 1000
    rows = {split: toy_rows(s.size, s.seed, [(f.family, f.weight, f.difficulty) for f in s.families], split)
            for split, s in (("train", train), ("test", test))}  # fmt: skip
    texts = {split: {normalize_text(str(r.problem)) for r in rs} for split, rs in rows.items()}
    assert len(texts["train"]) == train.size and len(texts["test"]) == test.size  # distinct within a split
    assert not texts["train"] & texts["test"]
    assert all(lab.split_of(r.meta["terms"]) == "test" for r in rows["test"])


def test_split_is_a_property_of_the_problem_whatever_the_seed() -> None:
    for seed in (0, 1, 7):
        for split in ("train", "test"):
            problems = list(lab.running_sum_problems(200, seed, split, {}))
            assert {lab.split_of(p["meta"]["terms"]) for p in problems} == {split}
    share = sum(lab.split_of([a, b, c]) == "test" for a in range(1, 40) for b in range(1, 40) for c in (3, 5))
    assert 0.07 < share / (39 * 39 * 2) < 0.13  # TEST_SHARE of the space


def test_asking_more_problems_than_the_space_holds_is_an_error() -> None:
    with pytest.raises(ValueError, match="raise max_terms or max_digits"):
        list(lab.running_sum_problems(500, 0, "test", {"min_terms": 2, "max_terms": 2, "max_digits": 1}))


@pytest.mark.parametrize(("left", "right"), [(185, 38), (47, 38), (9, 5), (999, 1), (120, 7), (5, 0)])
def test_column_work_is_right_digit_by_digit(left: int, right: int) -> None:
    text = lab.render_step(lab.SumStep(left, (right,), left + right), detail=True)
    for a, b, total in re.findall(r"(\d)\+(\d)(?:\+1)?=(\d+)", text.split(":", 1)[1]):
        assert int(total) - int(a) - int(b) in (0, 1)  # each column adds two digits and maybe a carry
    assert text.endswith(f"so {left + right}.")


def test_negative_totals_from_a_slip_are_stated_not_looped() -> None:
    assert lab.column_work(-9, 5) == "-9+5=-4"


def test_every_rendering_computes_the_true_total_and_tighter_ones_merge_steps() -> None:
    rng = random.Random(0)
    for _ in range(50):
        terms = [rng.randint(1, 99) for _ in range(rng.randint(4, 5))]
        texts = lab.renderings(terms)
        assert texts == sorted(texts, key=len)
        for text in texts:
            steps = [m for line in text.splitlines() if (m := _STEP.match(line))]
            assert steps, text
            for match in steps:  # every written step is arithmetic that holds
                assert sum(int(x) for x in match.group(1).split("+")) == int(match.group(2))
            assert int(steps[-1].group(2)) == sum(terms)
        assert texts[0].count("\n") == 0 and len(_STEP.match(texts[0]).group(1).split("+")) == len(terms)  # type: ignore[union-attr]
        assert texts[-1].count(", so ") == len(terms) - 1  # column work on every step


def _oracle(problem: dict, role: str, budget: int = 0, seed: int = 0) -> str:  # type: ignore[type-arg]
    meta = {"role": role, "problem_meta": problem["meta"], "budget_tokens": budget}
    request = GenerationRequest(problem["problem_id"], [], SamplingParams(seed=seed), meta)
    return OracleEngine(OracleSettings(error_rate=0.0)).generate([request])[0].completions[0].text


def test_oracle_teacher_writes_every_step_and_grades_right() -> None:
    for problem in lab.running_sum_problems(30, 3, "train", {"min_terms": 4, "max_terms": 5}):
        text = _oracle(problem, "teacher")
        parsed = parse_think(text)
        assert parsed.closed
        assert parsed.reasoning.count(", so ") == len(problem["meta"]["terms"]) - 1
        assert grade(parsed.final, problem["answer"], GraderKind.INTEGER).correct


def test_oracle_compressor_merges_steps_as_the_budget_shrinks() -> None:
    problem = next(lab.running_sum_problems(1, 5, "train", {"min_terms": 5, "max_terms": 5, "min_digits": 2}))
    lines = {b: parse_think(_oracle(problem, "compressor", b)).reasoning.count("\n") + 1 for b in (12, 40, 150)}
    assert lines[12] < lines[40] <= lines[150]


def test_integer_grader_reads_the_boxed_number() -> None:
    assert grade("The answer is \\boxed{1,204}.", "1204", GraderKind.INTEGER).correct
    assert not grade("The answer is \\boxed{1205}.", "1204", GraderKind.INTEGER).correct
    assert not grade("The answer is \\boxed{twelve}.", "12", GraderKind.INTEGER).correct
    assert grade("no box", "12", GraderKind.INTEGER).pred_answer is None


def test_a_toy_source_cannot_mix_lab_and_reasoning_gym_families() -> None:
    from bard_core.config import ToySourceConfig

    with pytest.raises(ValueError, match="separate toy sources"):
        ToySourceConfig(families=[{"family": ToyFamily.RUNNING_SUM}, {"family": ToyFamily.CHAIN_SUM}])
