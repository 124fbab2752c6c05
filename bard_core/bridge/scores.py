"""BRIDGE difficulty: how hard the teacher assistant (TA) finds a training problem, from its k local samples.

BRIDGE (arXiv 2512.20403) selects by "entropic difficulty" but its text, as far as we could read it, does not
say which entropy (token-level predictive entropy, entropy of the final answer over k samples, or
option-distribution entropy) nor how it is normalised. These are our documented choices, not the paper's
(see the project's method notes, methods-bridge-thinkdial.md §1.2-1.3):

- the primary signal is the Shannon entropy of the TA's final answers over k samples (Active-Prompting's
  disagreement), with "no parseable answer" as one answer of its own;
- the mean per-token entropy of the samples is a secondary signal, used only when the engine reports it for
  every problem of the pool (a half-weighted term, so that disagreement dominates).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Weight of the normalised token entropy next to the normalised answer entropy (in [0, 1]): the answer
# disagreement is the signal we trust more, the token entropy only separates problems with equal disagreement.
TOKEN_ENTROPY_WEIGHT = 0.5


def answer_entropy_bits(answers: Sequence[str | None]) -> float:
    """Shannon entropy, in bits, of the empirical distribution of the k answers.

    `None` (no parseable answer) is one category of its own: k unparseable samples are as certain as k equal
    answers, but an even mix of answers and failures counts as disagreement. 0.0 for an empty list."""
    if not answers:
        return 0.0
    total = len(answers)
    entropy = -sum((c / total) * math.log2(c / total) for c in Counter(answers).values())
    # A single category gives -0.0; report a plain 0.0.
    return max(0.0, entropy)


@dataclass(frozen=True)
class ProblemScore:
    """What the TA's scoring pass records for one training problem (one row of the scores table)."""

    problem_id: str
    samples: int
    """k, the TA samples scored."""
    answer_entropy_bits: float
    """Entropy of the k final answers (see answer_entropy_bits)."""
    token_entropy: float | None
    """Mean per-token entropy (nats) of the samples; None where the engine gave no logprobs."""
    pass_rate: float
    """Share of the k samples graded correct; logged only, not used by the default selection."""
    difficulty: float
    """The combined score (see difficulty_scores)."""


def difficulty_scores(
    answer_entropy: Sequence[float], token_entropy: Sequence[float | None], samples: int
) -> list[float]:
    """One difficulty per problem, higher = harder.

    Answer entropy normalised by log2(samples), its maximum with k samples, so it lies in [0, 1]. When EVERY
    problem has a token entropy, add TOKEN_ENTROPY_WEIGHT x token entropy normalised by the pool's maximum
    (in [0, 0.5]); otherwise answer entropy alone, because a score mixing problems with and without the term
    would not be comparable."""
    if len(answer_entropy) != len(token_entropy):
        raise ValueError(
            f"difficulty_scores: answer_entropy has {len(answer_entropy)} problems but token_entropy has "
            f"{len(token_entropy)}; pass one value (or None) per problem to both"
        )
    if samples < 1:
        raise ValueError(f"difficulty_scores: samples must be >= 1 (the TA's k samples per problem), got {samples}")
    # With one sample the entropy is always 0; divide by 1 rather than by log2(1) = 0.
    scale = math.log2(samples) if samples > 1 else 1.0
    scores = [min(1.0, max(0.0, h / scale)) for h in answer_entropy]
    tokens = [t for t in token_entropy if t is not None]
    if tokens and len(tokens) == len(scores):
        top = max(tokens)
        if top > 0:
            scores = [s + TOKEN_ENTROPY_WEIGHT * (t / top) for s, t in zip(scores, tokens, strict=True)]
    return scores
