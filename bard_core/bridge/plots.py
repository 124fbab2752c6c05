"""BRIDGE selection plot: where the chosen problems sit in the pool, and how hard they are.

The selection rules behind it are our documented choices, not BRIDGE's (its paper leaves the diversity
algorithm and the balance with difficulty unknown; see selection.py and the notes file). Headless (Agg),
one PNG, saved like bard_core/plots.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bard_core.plots import _save


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The rows projected on their two main axes (numpy SVD) and the share of variance each explains."""
    points = np.zeros((len(x), 2))
    if len(x) < 2 or x.shape[1] == 0:
        return points, (0.0, 0.0)
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = min(2, len(singular))
    points[:, :axes] = centred @ vt[:axes].T
    variance = singular**2
    total = float(variance.sum()) or 1.0
    shares = [float(v) / total for v in variance[:axes]] + [0.0] * (2 - axes)
    return points, (shares[0], shares[1])


def selection_plot(
    embeddings: np.ndarray, difficulty: Sequence[float] | None, chosen: Sequence[bool], path: Path, title: str
) -> Path:
    """Left: a 2-D PCA of the problem embeddings, coloured by difficulty (grey without scores), the chosen
    problems ringed in red. Right (only with scores): difficulty histograms of chosen vs not chosen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(embeddings, dtype=np.float64)
    mask = np.asarray(chosen, dtype=bool)
    if x.ndim != 2 or len(x) != len(mask):
        raise ValueError(f"selection_plot: embeddings {x.shape} need one row per entry of chosen ({len(mask)})")
    if difficulty is not None and len(difficulty) != len(mask):
        raise ValueError(f"selection_plot: {len(difficulty)} difficulties for {len(mask)} problems")
    points, (var1, var2) = _pca_2d(x)
    panels = 1 if difficulty is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    if difficulty is None:
        ax.scatter(points[:, 0], points[:, 1], s=12, color="grey", alpha=0.6, label="problem")
    else:
        scores = np.asarray(difficulty, dtype=np.float64)
        dots = ax.scatter(points[:, 0], points[:, 1], s=12, c=scores, cmap="viridis", alpha=0.8)
        fig.colorbar(dots, ax=ax, label="difficulty")
    ax.scatter(
        points[mask, 0], points[mask, 1], s=60, facecolors="none", edgecolors="red", lw=1.2,
        label=f"chosen ({int(mask.sum())} of {len(mask)})",
    )  # fmt: skip
    ax.set_xlabel(f"PC1 ({var1:.0%} of variance)", fontsize=8)
    ax.set_ylabel(f"PC2 ({var2:.0%} of variance)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    if difficulty is not None:
        hist = axes[0][1]
        scores = np.asarray(difficulty, dtype=np.float64)
        bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-9, 21) if len(scores) else 10
        hist.hist(scores[~mask], bins=bins, color="tab:grey", alpha=0.6, label=f"not chosen ({int((~mask).sum())})")
        hist.hist(scores[mask], bins=bins, color="tab:red", alpha=0.6, label=f"chosen ({int(mask.sum())})")
        hist.set_xlabel("difficulty", fontsize=8)
        hist.set_ylabel("problems", fontsize=8)
        hist.set_title("difficulty: chosen vs not chosen", fontsize=9)
        hist.legend(fontsize=7)
        hist.tick_params(labelsize=7)
    return _save(fig, path)
