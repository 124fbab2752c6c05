"""`select`'s teacher budget in each unit, priced by the teacher engine's own price table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bard_core.engine import worst_case_request_usd
from bard_core.prompting import load_prompt
from bard_core.recipes import resolve_config
from bard_pipeline.tasks.select import teacher_budget

NO_TA = ["bridge.enabled=true", "bridge.selector=random", "bridge.amplify.enabled=false"]  # the budget needs no TA
PRICE = "sample.engine.price={prompt_usd_per_mtok: 3.0, completion_usd_per_mtok: 15.0}"


def _problems(n: int) -> pa.Table:
    return pa.table(
        {"problem_id": [f"p{i}" for i in range(n)], "problem": ["What is 1+2?" * (1 + i % 3) for i in range(n)]}
    )


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("{requests: 12}", 12), ("{share: 0.05}", 10), ("{requests: 500}", 200)],  # capped at the problems there are
)
def test_budget_in_requests_and_share(unit: str, expected: int) -> None:
    cfg = resolve_config("smoke", [*NO_TA, f"bridge.teacher_budget={unit}"], None)
    assert teacher_budget(cfg, _problems(200)) == expected


def test_budget_in_dollars_buys_what_the_worst_case_of_the_longest_prompt_allows() -> None:
    cfg = resolve_config("smoke", [*NO_TA, "bridge.teacher_budget={usd: 1.0}", PRICE], None)
    problems = _problems(200)
    longest = max(
        len(load_prompt(cfg.sample.prompt_template).render(problem=p)) for p in problems.column("problem").to_pylist()
    )
    s = cfg.sample
    per_problem = worst_case_request_usd(s.engine.price, longest, s.n_samples, s.sampling.max_new_tokens)  # type: ignore[union-attr]
    count = teacher_budget(cfg, problems)
    assert count == int(1.0 // per_problem) and count * per_problem <= 1.0 < (count + 1) * per_problem


def test_budget_in_dollars_without_a_price_says_to_set_one() -> None:
    cfg = resolve_config("smoke", [*NO_TA, "bridge.teacher_budget={usd: 1.0}"], None)
    with pytest.raises(ValueError, match="price"):
        teacher_budget(cfg, _problems(10))
