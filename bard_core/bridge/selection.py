"""BRIDGE selection: which training problems the teacher answers, within the teacher-query budget.

BRIDGE (arXiv 2512.20403) picks a small subset (its abstract says 3-5 %) by a "zero-API-cost pipeline that
balances entropic difficulty and semantic diversity", but, in what we could read, says neither the
diversity algorithm (k-means, k-center, DPP) nor how the two criteria are balanced (a weight? stratified
per-cluster picks?). Our documented choices (the project's method notes, methods-bridge-thinkdial.md §1.3):

- diversity = k-means on the problem embeddings with k = the budgeted count (k-means++ seeding, Lloyd steps);
- difficulty+diversity = stratified: one problem per cluster, the hardest (s1's finding that combining the
  criteria beats either alone is the motivation; the per-cluster rule is ours);
- random and difficulty-only are the baselines to ablate against.

Everything is seeded: the same inputs and seed give the same Selection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import numpy as np


class SelectorKind(str, Enum):
    RANDOM = "random"
    DIFFICULTY = "difficulty"
    DIVERSITY = "diversity"
    DIFFICULTY_DIVERSITY = "difficulty+diversity"

    @property
    def needs_scores(self) -> bool:
        """Whether the strategy reads the TA's difficulty scores (so the scoring pass must run)."""
        return self in (SelectorKind.DIFFICULTY, SelectorKind.DIFFICULTY_DIVERSITY)

    @property
    def needs_embeddings(self) -> bool:
        """Whether the strategy reads problem embeddings."""
        return self in (SelectorKind.DIVERSITY, SelectorKind.DIFFICULTY_DIVERSITY)


@dataclass(frozen=True)
class Selection:
    """The outcome, one entry per input problem in input order."""

    chosen: tuple[bool, ...]
    """Whether the problem goes to the teacher."""
    cluster: tuple[int | None, ...]
    """Its k-means cluster (None when the strategy does not cluster)."""
    rank: tuple[int | None, ...]
    """Order of choice (0 = chosen first), None when not chosen."""

    @property
    def count(self) -> int:
        return sum(self.chosen)

    @property
    def order(self) -> tuple[int, ...]:
        """Indices of the chosen problems, in order of choice."""
        ranked = [(r, i) for i, r in enumerate(self.rank) if r is not None]
        return tuple(i for _, i in sorted(ranked))


def _squared_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (x * x).sum(axis=1)[:, None] - 2.0 * x @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
    clipped: np.ndarray = np.maximum(d, 0.0)  # rounding can make an exact zero slightly negative
    return clipped


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and centroids; each centroid is the mean of its final members (kept in place when empty)."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    # k-means++: the first centre uniformly, each next one with probability proportional to the squared
    # distance to the nearest centre so far.
    picked = [int(rng.integers(n))]
    nearest = _squared_distances(x, x[picked])[:, 0]
    while len(picked) < k:
        total = float(nearest.sum())
        if total > 0:
            nxt = int(rng.choice(n, p=nearest / total))
        else:  # every point sits on a centre (duplicates): any unpicked one; its cluster may end up empty
            nxt = int(rng.choice(np.setdiff1d(np.arange(n), picked)))
        picked.append(nxt)
        nearest = np.minimum(nearest, _squared_distances(x, x[[nxt]])[:, 0])
    centroids = x[picked].astype(np.float64)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(max(1, iters)):
        new = _squared_distances(x, centroids).argmin(axis=1)  # ties -> the lower cluster id
        converged = bool((new == labels).all())
        labels = new
        for c in range(k):
            members = labels == c
            if members.any():
                centroids[c] = x[members].mean(axis=0)
        if converged:
            break
    return labels, centroids


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Cluster labels (0..k-1) of the rows of `x`; k-means++ seeded from np.random.default_rng(seed), at most
    `iters` Lloyd steps, k clipped to len(x). Some clusters can be empty when rows repeat."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"kmeans: x must be a 2-D array (one row per problem), got shape {x.shape}")
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    return _kmeans(x, k, seed, iters)[0]


def _pool_size(kind: SelectorKind, n: int | None, difficulty: Sequence[float] | None, emb: np.ndarray | None) -> int:
    sizes = {"n": n, "difficulty": None if difficulty is None else len(difficulty)}
    sizes["embeddings"] = None if emb is None else len(emb)
    given = {name: size for name, size in sizes.items() if size is not None}
    if not given:
        raise ValueError(f"select({kind.value!r}): pass the number of problems as n=, difficulty= or embeddings=")
    if len(set(given.values())) > 1:
        raise ValueError(f"select({kind.value!r}): the inputs disagree on the number of problems: {given}")
    return next(iter(given.values()))


def _check_inputs(kind: SelectorKind, difficulty: Sequence[float] | None, emb: np.ndarray | None) -> None:
    if kind.needs_scores and difficulty is None:
        raise ValueError(
            f"selector {kind.value!r} needs the TA's difficulty scores (difficulty=, from the scoring pass); "
            f"use 'random' or 'diversity' to select without them"
        )
    if kind.needs_embeddings and emb is None:
        raise ValueError(
            f"selector {kind.value!r} needs problem embeddings (embeddings=, e.g. bard_core.bridge.embed of the "
            f"problem texts); use 'random' or 'difficulty' to select without them"
        )
    if emb is not None and emb.ndim != 2:
        raise ValueError(f"select({kind.value!r}): embeddings must be 2-D (one row per problem), got {emb.shape}")
    if difficulty is not None and not all(math.isfinite(d) for d in difficulty):
        raise ValueError(f"select({kind.value!r}): every difficulty must be a finite number")


def _hardest_first(difficulty: np.ndarray, rng: np.random.Generator) -> list[int]:
    # A seeded random key breaks ties, so equal scores do not always favour the first rows of the dataset.
    tie = rng.random(len(difficulty))
    return [int(i) for i in np.lexsort((tie, -difficulty))]


def _farthest_first(x: np.ndarray, order: list[int], missing: int) -> list[int]:
    """Greedy k-center fill: repeatedly the unchosen row farthest from everything chosen (ties: lowest index)."""
    nearest = _squared_distances(x, x[order]).min(axis=1)
    nearest[order] = -1.0
    added: list[int] = []
    for _ in range(missing):
        nxt = int(nearest.argmax())
        added.append(nxt)
        nearest = np.minimum(nearest, _squared_distances(x, x[[nxt]])[:, 0])
        nearest[nxt] = -1.0
    return added


def select(
    kind: SelectorKind,
    count: int,
    seed: int,
    *,
    n: int | None = None,
    difficulty: Sequence[float] | None = None,
    embeddings: np.ndarray | None = None,
) -> Selection:
    """Choose exactly min(count, number of problems) problems with strategy `kind` (see the module docstring).

    The number of problems is n, len(difficulty) or len(embeddings) (those given must agree). A cluster that
    k-means leaves empty is made up for by the hardest unchosen problems (diversity: the farthest from the
    chosen ones), so the count is always met."""
    kind = SelectorKind(kind)
    emb = None if embeddings is None else np.asarray(embeddings, dtype=np.float64)
    _check_inputs(kind, difficulty, emb)
    size = _pool_size(kind, n, difficulty, emb)
    if count < 0:
        raise ValueError(f"select({kind.value!r}): count must be >= 0 (problems for the teacher), got {count}")
    want = min(count, size)
    rng = np.random.default_rng(seed)
    scores = None if difficulty is None else np.asarray(difficulty, dtype=np.float64)
    labels: np.ndarray | None = None
    if want == 0:
        order: list[int] = []
    elif kind is SelectorKind.RANDOM:
        order = [int(i) for i in rng.permutation(size)[:want]]
    elif kind is SelectorKind.DIFFICULTY:
        assert scores is not None
        order = _hardest_first(scores, rng)[:want]
    else:
        assert emb is not None
        labels, centroids = _kmeans(emb, want, seed, iters=25)
        distance = _squared_distances(emb, centroids)[np.arange(size), labels]
        picks: list[tuple[float, int, int]] = []  # (sort key, cluster, index)
        for c in range(int(labels.max()) + 1):
            members = np.flatnonzero(labels == c)
            if len(members) == 0:
                continue
            if kind is SelectorKind.DIVERSITY:
                best = int(members[np.lexsort((members, distance[members]))[0]])
                picks.append((-float(len(members)), c, best))  # bigger clusters first: they cover more
            else:
                assert scores is not None
                best = int(members[np.lexsort((members, distance[members], -scores[members]))[0]])
                picks.append((-float(scores[best]), c, best))  # hardest picks first
        order = [i for _, _, i in sorted(picks)]
        if len(order) < want:
            if kind is SelectorKind.DIVERSITY:
                order += _farthest_first(emb, order, want - len(order))
            else:
                assert scores is not None
                taken = set(order)
                order += [i for i in _hardest_first(scores, rng) if i not in taken][: want - len(order)]
    rank: list[int | None] = [None] * size
    for position, index in enumerate(order):
        rank[index] = position
    return Selection(
        chosen=tuple(r is not None for r in rank),
        cluster=tuple(int(c) for c in labels) if labels is not None else (None,) * size,
        rank=tuple(rank),
    )


def _exact(value: float) -> Fraction:
    # The decimal the user wrote (repr round-trips), so 0.29 x 100 is 29 and 0.3 / 0.1 is 3, not 28 and 2.
    return Fraction(repr(float(value)))


def teacher_budget_count(
    problems: int,
    *,
    requests: int | None = None,
    share: float | None = None,
    usd: float | None = None,
    usd_per_problem: float | None = None,
) -> int:
    """How many problems the teacher may answer: one chosen problem = one teacher request (its n samples are
    one call). Exactly one unit: `requests` (a count), `share` of the pool in (0, 1] (floor, at least 1), or
    `usd` with `usd_per_problem`, the worst-case dollar cost of one problem's request (floor). Capped at
    `problems`."""
    if problems < 0:
        raise ValueError(f"teacher_budget_count: problems must be >= 0, got {problems}")
    given = [name for name, v in (("requests", requests), ("share", share), ("usd", usd)) if v is not None]
    if len(given) != 1:
        raise ValueError(
            "teacher budget: give exactly one of requests, share or usd"
            + (f" (got {', '.join(given)})" if given else " (got none)")
        )
    if requests is not None:
        if requests < 0:
            raise ValueError(f"teacher budget: requests must be >= 0, got {requests}")
        count = requests
    elif share is not None:
        if not 0 < share <= 1:
            raise ValueError(f"teacher budget: share must be in (0, 1] (a fraction of the pool), got {share}")
        count = max(1, math.floor(_exact(share) * problems))
    else:
        assert usd is not None
        if usd < 0:
            raise ValueError(f"teacher budget: usd must be >= 0, got {usd}")
        if usd_per_problem is None:
            raise ValueError(
                "teacher budget in usd needs the worst-case cost of one teacher request: set the teacher "
                "engine's `price` (prompt_usd_per_mtok, completion_usd_per_mtok), or budget in requests or share"
            )
        if usd_per_problem <= 0:
            raise ValueError(f"teacher budget: usd_per_problem must be > 0, got {usd_per_problem}")
        count = math.floor(_exact(usd) / _exact(usd_per_problem))
    return min(count, problems)
