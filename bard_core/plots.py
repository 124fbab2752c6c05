"""Plots people would rather look at than read. Headless (Agg); each function writes one PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bard_core.budget import BudgetSpec


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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def budget_following_plot(summaries: Mapping[str, Mapping[str, Any]], spec: BudgetSpec, path: Path) -> Path:
    """Mean reasoning length vs budget (with the ideal diagonal and the accepted band) and accuracy vs
    budget, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (length_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    tiers = list(spec.tiers_tokens)
    length_ax.plot(tiers, tiers, color="grey", ls="--", lw=1, label="ideal")
    length_ax.fill_between(
        tiers,
        [spec.bounds(t)[0] for t in tiers],
        [spec.bounds(t)[1] for t in tiers],
        color="tab:green",
        alpha=0.12,
        label="accepted",
    )
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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
