"""The comparison report's numbers and pages, on hand-made generation rows: per-arm figures, paired
differences, each claim's decision rule (held and not held), the Pareto front and both renderings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bard_core.budget import BudgetSpec, FidelityShape
from bard_core.config.experiment import ArmConfig, ClaimConfig, ClaimKind
from bard_core.experiment_metrics import Bootstrap, arm_summary, compare_arms, paired_difference, series_rows
from bard_core.experiment_metrics import correct as correct_measure
from bard_core.experiment_report import cost_points, render_html, render_markdown
from bard_core.plots import accuracy_vs_teacher_cost_plot, cost_axis_scale, pareto_plot, pareto_points

SPEC = BudgetSpec((16, 32), FidelityShape.TARGET, 0.25)
BOOT = Bootstrap(samples=200, confidence=0.95, seed=0)
PROBLEMS = [f"p{i}" for i in range(10)]


def _rows(
    model: str,
    correct: Callable[[str, int, int], bool],
    length: Callable[[int], int] = lambda b: b,
    mode: str = "budget",
    k: int = 2,
) -> list[dict[str, Any]]:
    return [
        {"model": model, "mode": mode, "benchmark": "toy", "problem_id": p, "budget_tokens": b, "sample_idx": s,
         "correct": correct(p, b, s), "reasoning_tokens": length(b), "error": None}
        for p in PROBLEMS for b in SPEC.tiers_tokens for s in range(k)
    ]  # fmt: skip


def always(p: str, b: int, s: int) -> bool:
    return True


def never(p: str, b: int, s: int) -> bool:
    return False


def half(p: str, b: int, s: int) -> bool:
    return s == 0  # one of the two samples of every problem


def test_series_rows_keep_the_arms_model_mode_and_outputs_only() -> None:
    rows = [*_rows("sft", always), *_rows("sft", always, mode="truncated"), *_rows("rl", always)]
    rows[0] = {**rows[0], "error": "context too long"}
    assert len(series_rows(rows, ArmConfig(series="truncated(sft)"))) == 40
    assert len(series_rows(rows, ArmConfig(series="sft"))) == 39


def test_arm_summary_per_budget() -> None:
    summary = arm_summary(_rows("rl", half, length=lambda b: b // 2), SPEC, BOOT)
    assert [r["budget_tokens"] for r in summary] == [16, 32]
    first = summary[0]
    assert (first["problems"], first["generations"], first["accuracy"]) == (10, 20, 0.5)
    assert first["accuracy_ci_low"] == first["accuracy_ci_high"] == 0.5  # every problem 0.5: no spread
    assert first["mean_reasoning_tokens"] == 8 and first["mean_relative_deviation"] == 0.5
    assert first["within_tolerance"] == 0.0
    assert first["short_wrong"] == 0.5  # the wrong half is short (not over the budget)


def test_paired_differences_are_per_problem_and_pooled() -> None:
    better = _rows("rl", lambda p, b, s: p != "p0")
    worse = _rows("sft", lambda p, b, s: p in ("p0", "p1") or b == 32)
    diffs = paired_difference(better, worse, correct_measure, BOOT)
    assert [d["budget_tokens"] for d in diffs] == [16, 32, None]
    assert diffs[0]["difference"] == pytest.approx(0.7) and diffs[1]["difference"] == pytest.approx(-0.1)
    assert diffs[2]["difference"] == pytest.approx(0.3) and diffs[2]["problems"] == 10
    assert diffs[0]["ci_low"] <= 0.7 <= diffs[0]["ci_high"]


def _claims(rows: dict[str, list[dict[str, Any]]], *claims: ClaimConfig) -> list[dict[str, Any]]:
    return compare_arms(rows, "bard", claims, SPEC, BOOT)["claims"]


def test_beats_holds_only_when_the_paired_interval_is_above_zero() -> None:
    beats = ClaimConfig(kind=ClaimKind.BEATS, arm="bard", other="sft_only")
    held = _claims({"bard": _rows("rl", always), "sft_only": _rows("sft", never)}, beats)[0]
    assert held["held"] and "+100.0 pt [+100.0, +100.0] over 10 problems" in held["numbers"]
    tie = _claims({"bard": _rows("rl", half), "sft_only": _rows("sft", half)}, beats)[0]
    assert not tie["held"] and "+0.0 pt" in tie["numbers"]
    reversed_ = _claims({"bard": _rows("rl", never), "sft_only": _rows("sft", always)}, beats)[0]
    assert not reversed_["held"]


def test_fewer_short_wrong_compares_wrong_answers_within_the_budget() -> None:
    claim = ClaimConfig(kind=ClaimKind.FEWER_SHORT_WRONG, arm="bard", other="additive")
    shortcut = _rows("rl", never, length=lambda b: b // 4)  # short and wrong: the additive shortcut
    overlong_wrong = _rows("rl", never, length=lambda b: 3 * b)  # wrong but over budget: not "short"
    assert _claims({"bard": _rows("rl", always), "additive": shortcut}, claim)[0]["held"]
    assert not _claims({"bard": _rows("rl", always), "additive": overlong_wrong}, claim)[0]["held"]


def test_length_follows_budget_needs_rank_order_and_small_deviation() -> None:
    claim = ClaimConfig(kind=ClaimKind.LENGTH_FOLLOWS_BUDGET, arm="bard")
    assert _claims({"bard": _rows("rl", always)}, claim)[0]["held"]
    flat = _claims({"bard": _rows("rl", always, length=lambda b: 20)}, claim)[0]
    assert not flat["held"] and "Spearman(budget, mean tokens) = nan" in flat["numbers"]
    loose = _claims({"bard": _rows("rl", always, length=lambda b: 2 * b)}, claim)[0]
    assert not loose["held"] and "mean relative deviation = 1.000" in loose["numbers"]


def test_an_undefined_figure_is_null_not_nan() -> None:
    rows = {
        "bard": _rows("rl", always),
        "other": [{**r, "problem_id": "q" + r["problem_id"]} for r in _rows("rl", never)],
    }
    pooled = compare_arms(rows, "bard", (), SPEC, BOOT)["paired"]["other"]["accuracy"][-1]
    assert pooled["problems"] == 0 and pooled["difference"] is None  # no problem in common: nothing to pair
    assert "| other | all | 0 | – | – |" in render_markdown("t", compare_arms(rows, "bard", (), SPEC, BOOT), {}, {})


def test_the_pareto_front_drops_dominated_points() -> None:
    summaries = {
        "a": [{"budget_tokens": 16, "mean_reasoning_tokens": 10.0, "accuracy": 0.5}],
        "b": [{"budget_tokens": 16, "mean_reasoning_tokens": 12.0, "accuracy": 0.4},  # dominated by a
              {"budget_tokens": 32, "mean_reasoning_tokens": 30.0, "accuracy": 0.9}],
    }  # fmt: skip
    assert pareto_points(summaries) == [("a", 16), ("b", 32)]


def test_both_renderings_state_what_was_measured_and_every_claim(tmp_path: Path) -> None:
    rows = {"bard": _rows("rl", always), "sft_only": _rows("sft", half)}
    claims = (
        ClaimConfig(kind=ClaimKind.BEATS, arm="bard", other="sft_only"),
        ClaimConfig(kind=ClaimKind.LENGTH_FOLLOWS_BUDGET, arm="sft_only"),
    )
    comparison = compare_arms(rows, "bard", claims, SPEC, BOOT)
    facts = {"budgets": [16, 32], "samples per problem (k)": 2}
    series = {"bard": "rl", "sft_only": "sft"}
    markdown = render_markdown("exp", comparison, facts, series)
    assert "## What was measured" in markdown and "- **samples per problem (k)**: 2" in markdown
    assert "| bard is more accurate than sft_only at the same budgets | held |" in markdown
    assert "| sft_only: reasoning length follows the budget | held |" in markdown
    claims_table = markdown.split("## Claims")[1].split("Decision rules")[0]
    assert all(line.count("|") == 4 for line in claims_table.strip().splitlines())  # no stray cell separators
    assert "| sft_only | 16 | 10 | +0.0 pt |" not in markdown and "| sft_only | all | 10 | -50.0 pt |" in markdown
    assert "| bard | rl | 16 | 10 | 100.0% | [100.0, 100.0] | 16.0 | 0.000 | 100.0% | 0.0% |" in markdown
    page = render_html("exp", comparison, facts, series, [pareto_plot(comparison["arms"], tmp_path / "p.png")])
    assert page.count("<table") == 4 and "data:image/png;base64," in page and page.count("<td>held</td>") == 2


def _teacher(requests: int, tokens: int, usd: float) -> dict[str, Any]:
    return {"teacher": {"requests": requests, "asked": requests, "tokens": tokens, "cost_usd": usd}}


def test_headline_accuracy_pools_budgets_per_problem() -> None:
    rows = {"bard": _rows("rl", lambda p, b, s: b == 32), "other": _rows("sft", half)}
    headline = compare_arms(rows, "bard", (), SPEC, BOOT)["headline"]
    assert headline["bard"] == {"problems": 10, "accuracy": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert headline["other"]["accuracy"] == 0.5


def test_the_report_shows_each_arms_teacher_cost_and_plots_it(tmp_path: Path) -> None:
    rows = {"bard": _rows("rl", always), "sft_only": _rows("sft", half), "lost": _rows("sft", never)}
    comparison = compare_arms(rows, "bard", (), SPEC, BOOT)
    comparison["cost"] = {"bard": _teacher(1200, 345678, 1.25), "sft_only": _teacher(30, 900, 0.01), "lost": None}
    series = {"bard": "rl", "sft_only": "sft", "lost": "sft"}
    markdown = render_markdown("exp", comparison, {}, series)
    assert "teacher (requests · tokens · $) |" in markdown  # the arms table's new column
    row = "| bard | rl | 16 | 10 | 100.0% | [100.0, 100.0] | 16.0 | 0.000 | 100.0% | 0.0% | 1,200 req · 345,678 tok"
    assert row + " · $1.2500 |" in markdown
    assert "| bard | rl | 100.0% | [100.0, 100.0] | 1,200 | 345,678 | $1.2500 |" in markdown
    assert "| sft_only | sft | 50.0% | [50.0, 50.0] | 30 | 900 | $0.0100 |" in markdown
    assert "| lost | sft | 0.0% | [0.0, 0.0] | – | – | – |" in markdown  # unknown cost: not zero
    assert "`plots/accuracy_vs_teacher_cost.png`" in markdown

    points = cost_points(comparison)
    assert points["bard"] == {"requests": 1200, "accuracy": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert points["lost"]["requests"] is None
    plot = accuracy_vs_teacher_cost_plot(points, tmp_path / "cost.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    page = render_html("exp", comparison, {}, series, [], plot)
    assert "<h2>Accuracy against teacher cost</h2>" in page and page.count("data:image/png;base64,") == 1
    assert page.count("<table") == 4 and "<td>1,200 req · 345,678 tok · $1.2500</td>" in page


def test_the_cost_axis_is_logarithmic_only_past_a_tenfold_range() -> None:
    assert cost_axis_scale([30, 1200]) == "log"
    assert cost_axis_scale([100, 900]) == "linear"
    assert cost_axis_scale([0, 1200]) == "symlog"  # an arm that asked the teacher nothing keeps its point
    assert cost_axis_scale([0, 5]) == "linear" and cost_axis_scale([]) == "linear"
