"""Plots people would rather look at than read. Headless (Agg); each function writes one PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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
