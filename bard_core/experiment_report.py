"""The experiment's comparison report: markdown and one self-contained HTML page (the plots inlined).

It states what was measured first (arms, their evaluate artifacts, problems, budgets, k, the decision
rules), then the claims table, then the per-arm figures and the paired differences they rest on, whatever
the numbers show, then what each arm's teacher cost against its headline accuracy. Every accuracy figure
comes from ``experiment_metrics.compare_arms`` over the arms' stored generations; the costs (the
comparison's ``cost``: arm -> ``bard_core.cost.RunCost.as_dict``, None when unknown) from the arms' runs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bard_core.experiment_metrics import SPEARMAN_MIN
from bard_core.report import _html_table, _img, _markdown_table, _page

RULES = (
    "beats: the pooled paired accuracy difference (arm − other, per problem, averaged over budgets) has a "
    "bootstrap interval above 0",
    "fewer short wrong: the pooled paired short-wrong share difference (other − arm) has an interval above 0; "
    "a short wrong answer is wrong and not over the budget",
    f"length follows the budget: Spearman(budget, mean reasoning tokens) ≥ {SPEARMAN_MIN} and mean |L−B|/B at "
    "most the budget tolerance",
    "an interval that contains 0 means not held: the experiment could not show the claim",
)


COST_PLOT = "plots/accuracy_vs_teacher_cost.png"
"""Where the experiment artifact keeps the accuracy-vs-teacher-cost plot."""
COST_NOTE = (
    "Teacher requests are HTTP calls to the teacher, retries included; an arm counts what its data cost even "
    "where an earlier arm built it (arms sharing a teacher run show the same figures)."
)


def _pct(value: Any) -> str:
    return "–" if _missing(value) else f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ci(low: Any, high: Any, scale: float = 100.0, sign: str = "") -> str:
    return "–" if _missing(low) else f"[{scale * low:{sign}.1f}, {scale * high:{sign}.1f}]"


def claims_rows(comparison: Mapping[str, Any]) -> list[list[str]]:
    rows = [["claim", "verdict", "deciding numbers"]]
    rows += [[c["claim"], "held" if c["held"] else "not held", c["numbers"]] for c in comparison["claims"]]
    return rows


def _teacher(comparison: Mapping[str, Any], arm: str) -> Mapping[str, Any] | None:
    """The arm's teacher figures (requests, tokens, cost_usd), or None when its cost is unknown."""
    cost = (comparison.get("cost") or {}).get(arm)
    return cost.get("teacher") if cost else None


def _teacher_cell(teacher: Mapping[str, Any] | None) -> str:
    if teacher is None:
        return "–"
    return f"{int(teacher['requests']):,} req · {int(teacher['tokens']):,} tok · ${float(teacher['cost_usd']):.4f}"


def arm_rows(comparison: Mapping[str, Any], series: Mapping[str, str]) -> list[list[str]]:
    """Per arm and budget: the figures the issue asks for, accuracy with its 95 % interval first, and what the
    arm's teacher cost (the same on each of its rows: one teacher run serves every budget)."""
    header = ["arm", "series", "budget", "problems", "accuracy", "95% CI", "mean tokens", "rel. deviation",
              "within tol.", "short wrong", "teacher (requests · tokens · $)"]  # fmt: skip
    rows = [header]
    for arm, summary in comparison["arms"].items():
        teacher = _teacher_cell(_teacher(comparison, arm))
        for r in summary:
            rows.append(
                [arm, series.get(arm, ""), str(r["budget_tokens"]), str(r["problems"]), _pct(r["accuracy"]),
                 _ci(r["accuracy_ci_low"], r["accuracy_ci_high"]), _num(r["mean_reasoning_tokens"], 1),
                 _num(r["mean_relative_deviation"], 3), _pct(r["within_tolerance"]), _pct(r["short_wrong"]), teacher]
            )  # fmt: skip
    return rows


def cost_rows(comparison: Mapping[str, Any], series: Mapping[str, str]) -> list[list[str]]:
    """Per arm: headline accuracy (pooled over budgets) with its interval, and the teacher's requests (HTTP
    calls, retries included), tokens and dollars."""
    rows = [["arm", "series", "accuracy (all budgets)", "95% CI", "teacher requests", "teacher tokens", "teacher $"]]
    for arm in comparison["arms"]:
        head = (comparison.get("headline") or {}).get(arm) or {}
        teacher = _teacher(comparison, arm)
        figures = (
            [f"{int(teacher['requests']):,}", f"{int(teacher['tokens']):,}", f"${float(teacher['cost_usd']):.4f}"]
            if teacher
            else ["–", "–", "–"]
        )
        rows.append(
            [arm, series.get(arm, ""), _pct(head.get("accuracy")), _ci(head.get("ci_low"), head.get("ci_high")),
             *figures]
        )  # fmt: skip
    return rows


def cost_points(comparison: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``plots.accuracy_vs_teacher_cost_plot`` draws: per arm, teacher requests and headline accuracy."""
    points = {}
    for arm in comparison["arms"]:
        head = (comparison.get("headline") or {}).get(arm) or {}
        teacher = _teacher(comparison, arm)
        points[arm] = {
            "requests": teacher["requests"] if teacher else None,
            "accuracy": head.get("accuracy"),
            "ci_low": head.get("ci_low"),
            "ci_high": head.get("ci_high"),
        }
    return points


def paired_rows(comparison: Mapping[str, Any]) -> list[list[str]]:
    """Per arm and budget (and pooled): arm − reference, in points, with bootstrap intervals over problems."""
    ref = comparison["reference"]
    rows = [["arm", "budget", "problems", f"Δ accuracy vs {ref}", "95% CI", f"Δ short wrong vs {ref}", "95% CI"]]
    for arm, paired in comparison["paired"].items():
        for acc, wrong in zip(paired["accuracy"], paired["short_wrong"], strict=True):
            budget = "all" if acc["budget_tokens"] is None else str(acc["budget_tokens"])
            rows.append(
                [arm, budget, str(acc["problems"]), _delta(acc["difference"]), _ci(acc["ci_low"], acc["ci_high"],
                 sign="+"), _delta(wrong["difference"]), _ci(wrong["ci_low"], wrong["ci_high"], sign="+")]
            )  # fmt: skip
    return rows


def _delta(value: Any) -> str:
    return "–" if _missing(value) else f"{100 * float(value):+.1f} pt"


def render_markdown(
    title: str, comparison: Mapping[str, Any], facts: Mapping[str, Any], series: Mapping[str, str]
) -> str:
    lines = [f"# {title}", "", "## What was measured", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += ["", "## Claims", "", _markdown_table(claims_rows(comparison)), "", "Decision rules:", ""]
    lines += [f"- {rule}" for rule in RULES]
    lines += ["", "## Per arm and budget", "", _markdown_table(arm_rows(comparison, series)), ""]
    lines += ["## Paired differences", "", _markdown_table(paired_rows(comparison)), ""]
    lines += ["Pareto plot: `plots/pareto.png` in this artifact (inlined in report.html).", ""]
    lines += ["## Accuracy against teacher cost", "", _markdown_table(cost_rows(comparison, series)), "", COST_NOTE]
    lines += ["", f"Accuracy vs teacher cost plot: `{COST_PLOT}` in this artifact (inlined in report.html).", ""]
    return "\n".join(lines)


def render_html(
    title: str,
    comparison: Mapping[str, Any],
    facts: Mapping[str, Any],
    series: Mapping[str, str],
    plots: Sequence[Path],
    cost_plot: Path | None = None,
) -> str:
    """The page; ``plots``: accuracy against reasoning tokens, ``cost_plot``: accuracy against teacher cost."""
    parts = [f"<h1>{html.escape(title)}</h1>", "<h2>What was measured</h2><ul class='facts'>"]
    parts += [f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in facts.items()]
    parts += ["</ul><h2>Claims</h2>", _html_table(claims_rows(comparison), "claims"), "<ul>"]
    parts += [f"<li>{html.escape(rule)}</li>" for rule in RULES]
    parts += ["</ul><h2>Accuracy against reasoning tokens</h2>"]
    parts += [_img(path, "accuracy vs mean reasoning tokens per arm") for path in plots]
    parts += ["<h2>Per arm and budget</h2>", _html_table(arm_rows(comparison, series), "arms")]
    parts += ["<h2>Paired differences</h2>", _html_table(paired_rows(comparison), "paired")]
    parts += ["<h2>Accuracy against teacher cost</h2>", _html_table(cost_rows(comparison, series), "cost")]
    parts += [f"<p>{html.escape(COST_NOTE)}</p>"]
    if cost_plot is not None:
        parts.append(_img(cost_plot, "headline accuracy vs teacher requests per arm"))
    return _page(title, "".join(parts))
