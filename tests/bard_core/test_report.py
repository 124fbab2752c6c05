"""The evaluation report: tables carry the metrics, plots are inlined, comparisons show differences."""

from __future__ import annotations

import re
from pathlib import Path

from bard_core.budget import BudgetSpec
from bard_core.evaluation import summarize
from bard_core.plots import evaluation_plots
from bard_core.report import metrics_table_rows, render_comparison, render_html, render_markdown

SPEC = BudgetSpec((16, 32), "target", 0.25)


def _rows(shift: int) -> list[dict]:
    rows = []
    for model in ("sft", "rl"):
        for budget in (16, 32):
            for i in range(6):
                rows.append({"model": model, "benchmark": "toy", "mode": "budget", "budget_tokens": budget,
                             "problem_id": f"p{i}", "correct": (i + shift) % 2 == 0, "reasoning_tokens": budget + i,
                             "closed": True, "unparsed": False, "error": None})  # fmt: skip
    return rows


def test_html_is_self_contained_and_its_table_matches_the_metrics(tmp_path: Path) -> None:
    metrics = summarize(_rows(0), SPEC, bootstrap_samples=200)
    plots = evaluation_plots(metrics, SPEC, tmp_path)
    assert set(plots) == {"toy"} and plots["toy"].stat().st_size > 5000
    page = render_html("t", metrics, {"budgets": [16, 32]}, plots)
    assert "data:image/png;base64," in page and 'src="http' not in page  # nothing fetched from elsewhere
    cells = re.findall(r"<tr><td>(.*?)</tr>", page.split('<table id="metrics">')[1])
    assert len(cells) == len(metrics)
    for m in metrics:
        assert f"{100 * m['accuracy']:.1f}%" in page
    markdown = render_markdown("t", metrics, {})
    assert markdown.count("\n| toy |") == len(metrics) == len(metrics_table_rows(metrics)) - 1


def test_comparison_shows_the_difference_of_two_evaluations() -> None:
    first, second = summarize(_rows(0), SPEC, 200), summarize(_rows(1), SPEC, 200)
    markdown, page = render_comparison(("a", "b"), first, second)
    assert "4 rows in both" in markdown and '<table id="comparison">' in page
    row = next(line for line in markdown.splitlines() if line.startswith("| toy | sft | 16 |"))
    assert "50.0% | 50.0% | +0.0 pt" in row  # 3 of 6 right either way
