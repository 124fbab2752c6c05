"""Plots people would rather look at than read. Headless (Agg); each function writes one PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bard_core.budget import BudgetSpec
from bard_core.schemas import EvalMode


def _save(fig: Any, path: Path) -> Path:
    """Lay out, write and close one figure (every plot here is saved the same way)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def tier_length_histograms(
    lengths_by_tier: Mapping[int, Sequence[int]], gold_lengths: Sequence[int], spec: BudgetSpec, path: Path
) -> Path:
    """One histogram per tier of valid compressed lengths, the accepted band shaded; gold lengths last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [*spec.tiers_tokens, None]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, tier in zip(axes[0], panels, strict=True):
        if tier is None:
            values, title = list(gold_lengths), "gold (uncompressed)"
        else:
            low, high = spec.bounds(tier)
            values, title = list(lengths_by_tier.get(tier, ())), f"tier {tier}"
            ax.axvspan(low, high, color="tab:green", alpha=0.15, label="accepted")
            ax.axvline(tier, color="tab:green", lw=1)
        if values:
            ax.hist(values, bins=min(30, max(5, len(set(values)))), color="tab:blue")
        ax.set_title(f"{title} (n={len(values)})", fontsize=9)
        ax.set_xlabel("reasoning tokens", fontsize=8)
        ax.tick_params(labelsize=7)
    return _save(fig, path)


def _ideal_and_band(ax: Any, budgets: Sequence[int], spec: BudgetSpec, ideal: str, band: str) -> None:
    """The length panel's reference: the diagonal (length = budget) and the accepted band around it."""
    ax.plot(budgets, budgets, color="grey", ls="--", lw=1, label=ideal)
    ax.fill_between(
        budgets,
        [spec.bounds(b)[0] for b in budgets],
        [spec.bounds(b)[1] for b in budgets],
        color="tab:green",
        alpha=0.12,
        label=band,
    )


def budget_following_plot(summaries: Mapping[str, Mapping[str, Any]], spec: BudgetSpec, path: Path) -> Path:
    """Mean reasoning length vs budget (with the ideal diagonal and the accepted band) and accuracy vs
    budget, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (length_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    tiers = list(spec.tiers_tokens)
    _ideal_and_band(length_ax, tiers, spec, "ideal", "accepted")
    for label, summary in summaries.items():
        per = summary.get("per_budget", {})
        budgets = sorted(int(b) for b in per)
        length_ax.plot(budgets, [per[str(b)]["mean_tokens"] for b in budgets], marker="o", label=label)
        acc_ax.plot(budgets, [per[str(b)]["accuracy"] for b in budgets], marker="o", label=label)
    for ax, ylabel in ((length_ax, "mean reasoning tokens"), (acc_ax, "accuracy")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(tiers, [str(t) for t in tiers])
        ax.set_xlabel("requested budget (tokens)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    length_ax.set_yscale("log", base=2)
    acc_ax.set_ylim(0, 1)
    return _save(fig, path)


def series_label(row: Mapping[str, Any]) -> str:
    """How an evaluation series is named in plots and tables: the model, or the baseline built from it."""
    return row["model"] if row["mode"] == EvalMode.BUDGET else f"{row['mode']}({row['model']})"


def evaluation_plots(metrics: Sequence[Mapping[str, Any]], spec: BudgetSpec, out_dir: Path) -> dict[str, Path]:
    """Per benchmark, two panels: accuracy vs budget with confidence bands, and mean reasoning length vs
    budget with the ideal diagonal and the accepted band. Returns plot name -> PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in metrics if m["mode"] != EvalMode.UNCONSTRAINED]
    benchmarks = sorted({m["benchmark"] for m in rows})
    plots: dict[str, Path] = {}
    for benchmark in benchmarks:
        mine = [m for m in rows if m["benchmark"] == benchmark]
        budgets = sorted({int(m["budget_tokens"]) for m in mine})
        fig, (acc_ax, length_ax) = plt.subplots(1, 2, figsize=(11, 4))
        _ideal_and_band(length_ax, budgets, spec, "ideal (length = budget)", "within tolerance")
        for series in sorted({series_label(m) for m in mine}):
            points = sorted((m for m in mine if series_label(m) == series), key=lambda m: int(m["budget_tokens"]))
            xs = [int(m["budget_tokens"]) for m in points]
            line = acc_ax.plot(xs, [m["accuracy"] for m in points], marker="o", label=series)[0]
            acc_ax.fill_between(
                xs,
                [m["accuracy_ci_low"] for m in points],
                [m["accuracy_ci_high"] for m in points],
                color=line.get_color(),
                alpha=0.15,
            )
            length_ax.plot(xs, [m["mean_reasoning_tokens"] for m in points], marker="o", label=series)
        for ax, ylabel in ((acc_ax, "accuracy (pass@1, 95% CI)"), (length_ax, "mean reasoning tokens")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.set_xlabel("budget (tokens)")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=8)
        acc_ax.set_ylim(0, 1)
        length_ax.set_yscale("log", base=2)
        fig.suptitle(benchmark)
        plots[benchmark] = _save(fig, out_dir / f"{benchmark}.png")
    return plots


def pareto_points(summaries: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, int]]:
    """(arm, budget) of the points no other point beats on both axes: at most as many mean reasoning tokens
    and at least the accuracy, one of them strictly."""
    points = [(arm, r) for arm, rows in summaries.items() for r in rows]

    def dominated(r: Mapping[str, Any]) -> bool:
        x, y = r["mean_reasoning_tokens"], r["accuracy"]
        return any(
            o["mean_reasoning_tokens"] <= x
            and o["accuracy"] >= y
            and (o["mean_reasoning_tokens"], o["accuracy"]) != (x, y)
            for _, o in points
        )

    return [(arm, int(r["budget_tokens"])) for arm, r in points if not dominated(r)]


def pareto_plot(summaries: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Accuracy against mean reasoning tokens: one line per arm through its budgets (labelled), the
    Pareto-optimal points ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = set(pareto_points(summaries))
    for arm, rows in summaries.items():
        ordered = sorted(rows, key=lambda r: int(r["budget_tokens"]))
        xs = [float(r["mean_reasoning_tokens"]) for r in ordered]
        ys = [float(r["accuracy"]) for r in ordered]
        line = ax.plot(xs, ys, marker="o", label=arm)[0]
        for r, x, y in zip(ordered, xs, ys, strict=True):
            ax.annotate(str(r["budget_tokens"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if (arm, int(r["budget_tokens"])) in front:
                ax.scatter([x], [y], s=140, facecolors="none", edgecolors=line.get_color(), linewidths=1.5)
    ax.set_xlabel("mean reasoning tokens")
    ax.set_ylabel("accuracy (pass@1)")
    ax.set_ylim(0, 1)
    ax.set_title("accuracy vs reasoning tokens (labels: budget; rings: Pareto front)", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def cost_axis_scale(values: Sequence[float]) -> str:
    """The x scale of a cost plot: ``log`` when the values span more than 10x, ``symlog`` when they also
    include 0 (an arm that asked the teacher nothing), else ``linear``."""
    positive = [v for v in values if v > 0]
    if not positive:
        return "linear"
    if len(positive) < len(values):  # a zero: no log axis; symlog keeps 0 and still spreads the rest
        return "symlog" if max(positive) > 10 else "linear"
    return "log" if max(positive) > 10 * min(positive) else "linear"


def accuracy_vs_teacher_cost_plot(points: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Headline accuracy against teacher requests, one labelled point per arm with its interval as error
    bars. ``points``: arm -> {"requests", "accuracy", "ci_low", "ci_high"}; an arm without an accuracy or a
    request count is left out (its figures are unknown, not zero)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    known = {arm: p for arm, p in points.items() if p.get("accuracy") is not None and p.get("requests") is not None}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, p in known.items():
        x, y = float(p["requests"]), float(p["accuracy"])
        low = y if p.get("ci_low") is None else float(p["ci_low"])
        high = y if p.get("ci_high") is None else float(p["ci_high"])
        ax.errorbar([x], [y], yerr=[[y - low], [high - y]], fmt="o", capsize=4, label=arm)
        ax.annotate(arm, (x, y), fontsize=8, xytext=(5, 4), textcoords="offset points")
    scale = cost_axis_scale([float(p["requests"]) for p in known.values()])
    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=1)
    elif scale == "log":
        ax.set_xscale("log")
    ax.margins(x=0.1)  # labelled points at the ends of the range stay inside
    ax.set_xlabel("teacher requests (HTTP calls, retries included)")
    ax.set_ylabel("accuracy (pass@1, pooled over budgets)")
    ax.set_ylim(0, 1)
    ax.set_title("accuracy vs teacher cost (bars: bootstrap interval over problems)", fontsize=9)
    if known:
        ax.legend(fontsize=8)
    return _save(fig, path)
