"""BRIDGE diversity: embeddings of the problem texts, so that selection can cover the pool.

BRIDGE (arXiv 2512.20403) balances difficulty with "semantic diversity" ("Coverage-Guided Sampling") but
does not say, in what we could read, which embedding model it uses. Our documented choice (notes:
the project's method notes, methods-bridge-thinkdial.md §1.2-1.3) is a model-free default that needs no download and
no accelerator: hashed character n-grams with TF-IDF weighting. It sees surface similarity (shared words,
formulas, numbers), not meaning; a neural embedder can be added to EMBEDDERS under its own kind.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from enum import Enum

import numpy as np

NGRAM_SIZES = (2, 3, 4)
_SPACES = re.compile(r"\s+")


class EmbeddingKind(str, Enum):
    NGRAM_TFIDF = "ngram_tfidf"


def _normalise(text: str) -> str:
    # Lower-cased, whitespace runs collapsed (layout is not content), digits kept (numbers tell problems
    # apart); padded with one space so that a text's first and last characters start and end n-grams.
    return f" {_SPACES.sub(' ', text.lower()).strip()} "


def _ngrams(text: str) -> Counter[str]:
    return Counter(text[i : i + n] for n in NGRAM_SIZES for i in range(len(text) - n + 1))


def _bucket(gram: str, dim: int) -> tuple[int, float]:
    # A stable hash (Python's hash() is salted per process, so embeddings would change between runs). The
    # sign bit makes colliding n-grams cancel on average instead of adding up (as in sklearn's hashing).
    value = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


def _ngram_tfidf(texts: Sequence[str], dim: int) -> np.ndarray:
    """TF-IDF over the given texts (raw counts x smoothed idf, log((1+n)/(1+df)) + 1, as sklearn), hashed
    into `dim` signed buckets, each row L2-normalised (a text with no n-gram stays all zeros)."""
    counts = [_ngrams(_normalise(t)) for t in texts]
    document_frequency: Counter[str] = Counter()
    for c in counts:
        document_frequency.update(c.keys())
    n = len(texts)
    buckets = {g: _bucket(g, dim) for g in sorted(document_frequency)}
    idf = {g: math.log((1 + n) / (1 + df)) + 1.0 for g, df in document_frequency.items()}
    out = np.zeros((n, dim), dtype=np.float64)
    for row, c in enumerate(counts):
        # Sorted, so the float sums run in the same order whatever the Counter's insertion order.
        for gram in sorted(c):
            index, sign = buckets[gram]
            out[row, index] += sign * c[gram] * idf[gram]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalised: np.ndarray = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return normalised


EMBEDDERS: dict[EmbeddingKind, Callable[[Sequence[str], int], np.ndarray]] = {
    EmbeddingKind.NGRAM_TFIDF: _ngram_tfidf,
}


def embed(texts: Sequence[str], kind: EmbeddingKind = EmbeddingKind.NGRAM_TFIDF, dim: int = 256) -> np.ndarray:
    """One L2-normalised row of `dim` floats per text, in input order; deterministic for the same texts.

    The weighting depends on the whole list (idf), so embed the pool being selected from in one call."""
    if dim < 1:
        raise ValueError(f"embed: dim must be >= 1 (the embedding width), got {dim}")
    return EMBEDDERS[EmbeddingKind(kind)](texts, dim)
