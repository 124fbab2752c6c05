"""What a training stage trains on: the RL prompts drawn from a dataset's budget variants, and the records
that fit under a length limit.

The driver decides both once, before training, and writes the result into the stage's artifact
(``schemas.SFT_KEPT``, ``schemas.RL_PROMPTS``); the Ray Train workers only read those rows, so what is
trained on and what the stats count cannot disagree.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.config import RLStageConfig


def split_overlength(
    records: Sequence[Mapping[str, Any]], lengths: Sequence[int], max_tokens: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept records in their order, one note per record over ``max_tokens``). Over-length records are
    dropped and counted, never truncated: a cut chat would teach a reasoning that stops mid-way."""
    kept = [dict(r) for r, n in zip(records, lengths, strict=True) if n <= max_tokens]
    dropped = [
        {"problem_id": r["problem_id"], "budget_tokens": r["budget_tokens"], "tokens": n}
        for r, n in zip(records, lengths, strict=True)
        if n > max_tokens
    ]
    return kept, dropped


def _problem_rng(seed: int, problem_id: str) -> random.Random:
    # Seeded per problem, so a problem's draw does not depend on which other problems the dataset holds.
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}|{problem_id}".encode()).digest()[:8], "big"))


def draw_rl_prompts(records: Sequence[Mapping[str, Any]], section: RLStageConfig) -> list[dict[str, Any]]:
    """Per problem, ``budgets_per_problem`` budgets drawn from the tier weights (without weights: uniformly
    from the budgets the dataset's prompts of that problem carry, which may lie between the tiers; seeded,
    independent of the records' order), then a seeded shuffle, cut to ``max_prompts``."""
    by_problem: dict[str, dict[int, Mapping[str, Any]]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], {})[int(record["budget_tokens"])] = record
    prompts = []
    for problem_id in sorted(by_problem):
        rng = _problem_rng(section.seed, problem_id)
        weights = section.budget_weights or dict.fromkeys(sorted(by_problem[problem_id]), 1.0)
        options = [b for b in weights if b in by_problem[problem_id] and weights[b] > 0]
        if not options:
            continue
        for budget in rng.choices(options, weights=[weights[b] for b in options], k=section.budgets_per_problem):
            prompts.append(dict(by_problem[problem_id][budget]))
    random.Random(section.seed).shuffle(prompts)
    return prompts[: section.max_prompts] if section.max_prompts else prompts
