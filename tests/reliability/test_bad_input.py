"""Fault 9, bad input: a short seeded run of the generated cases (the campaign runs hundreds per generator), and
proof that the harness can fail: broken loaders, each wrong in one way a real bug would be, are caught."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bard_core.recipes import ConfigError, load_config
from bard_pipeline.chaos.bad_input import GENERATORS, ConfigLoader, ProblemLoader, load_problems, run_bad_input, trials
from bard_pipeline.chaos.report import Fault

Rows = list[dict[str, Any]]


def test_generated_bad_input_ends_in_named_errors_or_counted_rows() -> None:
    outcome = run_bad_input(max_examples=50, seed=9)
    assert outcome.cases == 50 * len(GENERATORS)
    assert outcome.failures == []


def _drops_a_row(path: Path, share: float) -> tuple[Rows, Rows]:
    accepted, rejected = load_problems(path, share)
    return accepted[:-1], rejected  # a row silently lost


def _raw_key_error(path: Path, share: float) -> tuple[Rows, Rows]:
    raise KeyError("problem")


def _error_without_the_file(path: Path, share: float) -> tuple[Rows, Rows]:
    from bard_core.problems import ProblemFileError

    raise ProblemFileError("something is wrong")


@pytest.mark.parametrize(
    ("loader", "expected"),
    [(_drops_a_row, "!= accepted"), (_raw_key_error, "-> KeyError: 'problem'"),
     (_error_without_the_file, "-> ProblemFileError not naming the file")],
    ids=["silently dropped row", "raw traceback", "error naming nothing"],
)  # fmt: skip
def test_a_broken_problem_loader_is_caught(loader: ProblemLoader, expected: str) -> None:
    outcome = run_bad_input(max_examples=30, seed=1, generators=["problem files"], problem_loader=loader)
    assert outcome.cases == 30
    assert outcome.failures and all(f.startswith("problem files: ") for f in outcome.failures)
    assert any(expected in f for f in outcome.failures), outcome.failures[:3]


def _type_error(path: Path | None, overrides: Sequence[str]) -> object:
    raise TypeError("'int' object does not support item assignment")


def _config_error_without_origin(path: Path | None, overrides: Sequence[str]) -> object:
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        raise ConfigError(f"1 config error(s)\n{str(exc).splitlines()[-1]}") from None


@pytest.mark.parametrize(
    ("loader", "expected"),
    [(_type_error, "-> TypeError: 'int' object"), (_config_error_without_origin, "names neither the file")],
    ids=["raw traceback", "error naming neither file nor override"],
)  # fmt: skip
@pytest.mark.parametrize("generator", ["recipes", "overrides"])
def test_a_broken_config_loader_is_caught(generator: str, loader: ConfigLoader, expected: str) -> None:
    outcome = run_bad_input(max_examples=20, seed=1, generators=[generator], config_loader=loader)
    assert outcome.failures and all(f.startswith(f"{generator}: ") for f in outcome.failures)
    assert any(expected in f for f in outcome.failures), outcome.failures[:3]


def test_trials_are_one_row_per_generator() -> None:
    results = trials(max_examples=5, seed=3)
    assert [r.fault for r in results] == [Fault.BAD_INPUT] * 3
    assert [r.cases for r in results] == [5, 5, 5] and all(r.survived for r in results)
    assert [r.detail.split(":")[0] for r in results] == list(GENERATORS)
