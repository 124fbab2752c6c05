"""BRIDGE's selection core: TA difficulty scores, text embeddings, the selection strategies, the teacher
budget arithmetic and the selection plot."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bard_core.bridge import (
    EmbeddingKind,
    SelectorKind,
    answer_entropy_bits,
    difficulty_scores,
    embed,
    kmeans,
    select,
    selection_plot,
    teacher_budget_count,
)

CENTRES = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])


def _blobs(per_blob: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated 2-D blobs; returns the points and each point's blob."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([c + rng.normal(scale=0.5, size=(per_blob, 2)) for c in CENTRES])
    return points, np.repeat(np.arange(len(CENTRES)), per_blob)


# --- scores ---------------------------------------------------------------------------------------------


def test_answer_entropy_equal_distinct_and_none() -> None:
    assert answer_entropy_bits(["42"] * 8) == 0.0
    assert answer_entropy_bits([]) == 0.0
    assert answer_entropy_bits([str(i) for i in range(8)]) == pytest.approx(3.0)
    assert answer_entropy_bits(["a", "b", "c"]) == pytest.approx(math.log2(3))
    # None is one category of its own: all unparseable is certain, half unparseable is one bit.
    assert answer_entropy_bits([None, None, None]) == 0.0
    assert answer_entropy_bits(["7", "7", None, None]) == pytest.approx(1.0)
    assert answer_entropy_bits(["7", None, None, "8"]) == pytest.approx(1.5)


def test_difficulty_normalised_by_log2_samples_without_token_entropy() -> None:
    # Answer entropy alone when any problem lacks a token entropy, scaled to [0, 1] by log2(4) = 2.
    assert difficulty_scores([0.0, 2.0, 1.0], [None, None, None], samples=4) == pytest.approx([0.0, 1.0, 0.5])
    assert difficulty_scores([0.0, 2.0, 1.0], [0.3, None, 0.9], samples=4) == pytest.approx([0.0, 1.0, 0.5])


def test_difficulty_adds_half_weighted_token_entropy_when_every_problem_has_it() -> None:
    scores = difficulty_scores([0.0, 2.0, 1.0], [0.5, 2.0, 1.0], samples=4)
    assert scores == pytest.approx([0.0 + 0.5 * 0.25, 1.0 + 0.5 * 1.0, 0.5 + 0.5 * 0.5])
    assert difficulty_scores([0.0], [None], samples=1) == [0.0]
    with pytest.raises(ValueError, match="token_entropy"):
        difficulty_scores([0.0, 1.0], [None], samples=4)


# --- embedding ------------------------------------------------------------------------------------------

TEXTS = [
    "Find the derivative of sin(x) * cos(x) with respect to x.",
    "Find the derivative of sin(x) + cos(x) with respect to x.",
    "A farmer has 17 sheep and buys 5 more. How many sheep does the farmer have?",
    "",
]


def test_embed_is_l2_normalised_and_similar_texts_are_closer() -> None:
    e = embed(TEXTS, EmbeddingKind.NGRAM_TFIDF, dim=128)
    assert e.shape == (4, 128)
    assert np.linalg.norm(e[:3], axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3
    assert float(e[0] @ e[1]) > float(e[1] @ e[2]) + 0.3
    with pytest.raises(ValueError, match="dim"):
        embed(TEXTS, dim=0)


def test_embed_is_deterministic_across_processes() -> None:
    # A different PYTHONHASHSEED changes Python's hash(); the embedding must not move with it.
    code = (
        f"import sys; from bard_core.bridge import embed\nsys.stdout.write(embed({TEXTS!r}, dim=64).tobytes().hex())\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1] == embed(TEXTS, dim=64).tobytes().hex()


# --- selection ------------------------------------------------------------------------------------------


def test_needs_flags() -> None:
    assert [k.needs_scores for k in SelectorKind] == [False, True, False, True]
    assert [k.needs_embeddings for k in SelectorKind] == [False, False, True, True]
    assert SelectorKind("difficulty+diversity") is SelectorKind.DIFFICULTY_DIVERSITY


@pytest.mark.parametrize("kind", list(SelectorKind))
@pytest.mark.parametrize("count", [0, 1, 5, 36, 100])
def test_every_strategy_meets_the_count_and_is_reproducible(kind: SelectorKind, count: int) -> None:
    points, _ = _blobs()
    difficulty = list(np.random.default_rng(1).random(len(points)))
    first = select(kind, count, 3, difficulty=difficulty, embeddings=points)
    again = select(kind, count, 3, difficulty=difficulty, embeddings=points)
    assert first == again
    assert first.count == min(count, len(points)) == sum(r is not None for r in first.rank)
    assert sorted(r for r in first.rank if r is not None) == list(range(first.count))
    assert all((r is not None) == c for r, c in zip(first.rank, first.chosen, strict=True))
    # Clustering strategies label every problem (with nothing to choose, nothing is clustered).
    assert (first.cluster[0] is None) == (not kind.needs_embeddings or count == 0)


def test_random_depends_on_the_seed_and_accepts_n() -> None:
    picks = {select(SelectorKind.RANDOM, 5, seed, n=50).order for seed in range(4)}
    assert len(picks) > 1
    assert select(SelectorKind.RANDOM, 5, 0, n=50) == select(SelectorKind.RANDOM, 5, 0, n=50)


def test_difficulty_picks_the_top_hardest_first() -> None:
    difficulty = [0.1, 0.9, 0.3, 0.8, 0.2, 0.7]
    chosen = select(SelectorKind.DIFFICULTY, 3, 0, difficulty=difficulty)
    assert chosen.order == (1, 3, 5)
    # Ties are broken by the seed, not by row order: over a few seeds both tied rows get picked.
    firsts = {select(SelectorKind.DIFFICULTY, 1, seed, difficulty=[1.0, 1.0, 0.0]).order for seed in range(8)}
    assert firsts == {(0,), (1,)}


def test_kmeans_recovers_planted_blobs_and_clips_k() -> None:
    points, blob = _blobs()
    labels = kmeans(points, 3, seed=0)
    assert {(int(b), int(label)) for b, label in zip(blob, labels, strict=True)} == {
        (b, int(labels[blob == b][0])) for b in range(3)
    }
    assert len(set(labels.tolist())) == 3
    assert len(set(kmeans(points[:2], 5, seed=0).tolist())) == 2


def test_difficulty_diversity_takes_the_hardest_of_each_planted_cluster() -> None:
    points, blob = _blobs()
    difficulty = np.random.default_rng(2).random(len(points))
    difficulty[0] = difficulty[1] = 5.0  # the two globally hardest both sit in blob 0: only one may be taken
    chosen = select(SelectorKind.DIFFICULTY_DIVERSITY, 3, 0, difficulty=list(difficulty), embeddings=points)
    picked = list(chosen.order)
    assert sorted(blob[picked].tolist()) == [0, 1, 2]
    for i in picked:
        assert difficulty[i] == max(difficulty[blob == blob[i]])
    # Tied hardest: the one nearer its cluster's centroid.
    centre = points[blob == 0].mean(axis=0)
    nearer = min((0, 1), key=lambda i: float(np.linalg.norm(points[i] - centre)))
    assert nearer in picked


def test_diversity_takes_one_per_planted_cluster_nearest_its_centre() -> None:
    points, blob = _blobs()
    picked = list(select(SelectorKind.DIVERSITY, 3, 0, embeddings=points).order)
    assert sorted(blob[picked].tolist()) == [0, 1, 2]
    for i in picked:
        members = points[blob == blob[i]]
        distances = np.linalg.norm(members - members.mean(axis=0), axis=1)
        assert float(np.linalg.norm(points[i] - members.mean(axis=0))) == pytest.approx(float(distances.min()))


def test_diversity_on_real_text_embeddings_covers_each_topic() -> None:
    topics = [
        [f"Compute the derivative of x^{i} + sin({i}x) with respect to x." for i in range(2, 7)],
        [f"A shop sells {i} apples for {i + 3} dollars. How much do {2 * i} apples cost?" for i in range(2, 7)],
        [f"Translate the sentence number {i} into French: the cat sleeps on the mat." for i in range(2, 7)],
    ]
    texts = [t for topic in topics for t in topic]
    picked = select(SelectorKind.DIVERSITY, 3, 0, embeddings=embed(texts)).order
    assert sorted(i // 5 for i in picked) == [0, 1, 2]


def test_empty_clusters_are_filled_so_the_count_is_met() -> None:
    # Identical rows: k-means can only make one non-empty cluster; the rest comes from the fill rule.
    same = np.ones((6, 4))
    difficulty = [0.1, 0.5, 0.2, 0.9, 0.3, 0.4]
    hard = select(SelectorKind.DIFFICULTY_DIVERSITY, 3, 0, difficulty=difficulty, embeddings=same)
    assert hard.count == 3
    assert set(hard.order) == {3, 1, 5}
    assert select(SelectorKind.DIVERSITY, 4, 0, embeddings=same).count == 4


def test_missing_inputs_name_the_strategy() -> None:
    with pytest.raises(ValueError, match=r"'difficulty'.*difficulty scores"):
        select(SelectorKind.DIFFICULTY, 2, 0, n=5)
    with pytest.raises(ValueError, match=r"'diversity'.*embeddings"):
        select(SelectorKind.DIVERSITY, 2, 0, difficulty=[0.1] * 5)
    with pytest.raises(ValueError, match=r"'difficulty\+diversity'.*embeddings"):
        select(SelectorKind.DIFFICULTY_DIVERSITY, 2, 0, difficulty=[0.1] * 5)
    with pytest.raises(ValueError, match="number of problems"):
        select(SelectorKind.RANDOM, 2, 0)
    with pytest.raises(ValueError, match="disagree"):
        select(SelectorKind.RANDOM, 2, 0, n=4, difficulty=[0.1] * 5)


# --- teacher budget -------------------------------------------------------------------------------------


def test_teacher_budget_in_requests_share_and_usd() -> None:
    assert teacher_budget_count(100, requests=7) == 7
    assert teacher_budget_count(5, requests=7) == 5
    assert teacher_budget_count(100, share=0.29) == 29  # not 28 from 0.29 * 100 = 28.999...
    assert teacher_budget_count(100, share=0.035) == 3
    assert teacher_budget_count(10, share=0.01) == 1  # at least one
    assert teacher_budget_count(10, share=1.0) == 10
    assert teacher_budget_count(100, usd=0.3, usd_per_problem=0.1) == 3  # not 2 from 2.999...
    assert teacher_budget_count(100, usd=1.0, usd_per_problem=0.3) == 3
    assert teacher_budget_count(100, usd=0.05, usd_per_problem=0.1) == 0
    assert teacher_budget_count(2, usd=10.0, usd_per_problem=0.1) == 2


def test_teacher_budget_errors() -> None:
    with pytest.raises(ValueError, match=r"exactly one.*requests, share"):
        teacher_budget_count(100, requests=3, share=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        teacher_budget_count(100)
    with pytest.raises(ValueError, match="`price`"):
        teacher_budget_count(100, usd=5.0)
    with pytest.raises(ValueError, match="usd_per_problem"):
        teacher_budget_count(100, usd=5.0, usd_per_problem=0.0)
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
        teacher_budget_count(100, share=1.5)


# --- plot -----------------------------------------------------------------------------------------------


def test_selection_plot_writes_png(tmp_path: Path) -> None:
    points, _ = _blobs(per_blob=5)
    difficulty = list(np.linspace(0, 1, len(points)))
    chosen = select(SelectorKind.DIFFICULTY_DIVERSITY, 3, 0, difficulty=difficulty, embeddings=points).chosen
    for name, scores in (("with.png", difficulty), ("without.png", None)):
        out = selection_plot(points, scores, chosen, tmp_path / name, "difficulty+diversity, 3 of 15")
        assert out == tmp_path / name
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="one row per entry"):
        selection_plot(points, None, chosen[:-1], tmp_path / "bad.png", "bad")
