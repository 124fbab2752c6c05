from __future__ import annotations

import pytest

from bard_core.budget import BudgetError, BudgetSpec, FidelityShape, parse_think, render_assistant, render_user
from bard_core.prompting import PromptError, load_prompt


def test_bounds_and_within_for_both_shapes() -> None:
    target = BudgetSpec((100, 200), FidelityShape.TARGET, 0.2)
    assert target.bounds(100) == (80, 120)
    assert target.within(80, 100) and target.within(120, 100)
    assert not target.within(79, 100) and not target.within(121, 100)
    cap = BudgetSpec((100, 200), FidelityShape.CAP, 0.1)
    assert cap.bounds(100) == (0, 110)
    assert cap.within(1, 100) and not cap.within(111, 100)


def test_fidelity_peaks_at_the_budget_and_is_half_at_the_band_edge() -> None:
    spec = BudgetSpec((100,), FidelityShape.TARGET, 0.2)
    assert spec.fidelity(100, 100) == 1.0
    assert spec.fidelity(110, 100) == spec.fidelity(90, 100) == 0.75
    assert spec.fidelity(120, 100) == spec.fidelity(80, 100) == 0.5  # the edge of the accepted band
    assert spec.fidelity(140, 100) == spec.fidelity(1000, 100) == 0.0
    cap = BudgetSpec((100,), FidelityShape.CAP, 0.1)
    assert cap.fidelity(5, 100) == cap.fidelity(100, 100) == 1.0
    assert cap.fidelity(110, 100) == 0.5 and cap.fidelity(125, 100) == 0.0
    exact = BudgetSpec((100,), FidelityShape.TARGET, 0.0)
    assert exact.fidelity(100, 100) == 1.0 and exact.fidelity(101, 100) == 0.0


def test_tiers_below_and_check_budget() -> None:
    spec = BudgetSpec((16, 32, 64, 128))
    assert spec.tiers_below(64) == (16, 32)
    assert spec.tiers_below(500) == (16, 32, 64, 128)
    with pytest.raises(BudgetError, match=r"outside the tier range \[16, 128\]"):
        spec.check_budget(4096)
    with pytest.raises(BudgetError, match="ascending"):
        BudgetSpec((64, 16))


@pytest.mark.parametrize(
    ("text", "reasoning", "final", "closed"),
    [
        ("<think>\na\nb\n</think>\n\nThe answer is \\boxed{3}.", "a\nb", "The answer is \\boxed{3}.", True),
        ("prefilled reasoning</think> \\boxed{1}", "prefilled reasoning", "\\boxed{1}", True),
        ("<think>\nran out of tok", "ran out of tok", "", False),
        ("no tags \\boxed{2}", None, "no tags \\boxed{2}", False),
    ],
)
def test_parse_think(text: str, reasoning: str | None, final: str, closed: bool) -> None:
    parsed = parse_think(text)
    assert (parsed.reasoning, parsed.final, parsed.closed) == (reasoning, final, closed)


def test_single_template_renders_the_budget_and_the_assistant_turn() -> None:
    user = render_user(load_prompt("budget_user.txt"), "What is 2 + 2?", 64)
    assert user == "What is 2 + 2?\n\nThinking budget: 64 tokens."
    assistant = render_assistant(" 2+2=4 ", "The answer is \\boxed{4}.")
    assert assistant == "<think>\n2+2=4\n</think>\n\nThe answer is \\boxed{4}."
    assert parse_think(assistant).reasoning == "2+2=4"


def test_prompt_errors_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PromptError, match="not found"):
        load_prompt("nope.txt")
    custom = tmp_path / "p.txt"
    custom.write_text("{problem} {budget}")
    with pytest.raises(PromptError, match=r"unknown field\(s\) \['budget'\]"):
        load_prompt(str(custom)).require(frozenset({"problem", "budget_tokens"}))
