"""The budget-following probe: greedy generations of a model at every budget tier on held-out problems.

Training stages run it on the driver after fitting (and on the base model before SFT), so that every
checkpoint artifact says how well its reasoning length follows the requested budget, and how accurate it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.budget import BudgetSpec, HFTokenCounter, parse_think
from bard_core.config import HFEngineConfig, ProbeConfig
from bard_core.engine import GenerationRequest, SamplingParams
from bard_core.metrics import budget_following
from bard_core.rewards import score


def probe_prompts(records: Sequence[Mapping[str, Any]], problems: int) -> list[Mapping[str, Any]]:
    """All tiers of ``problems`` problems of an RL prompt table, chosen by a hash of their ids (a stable
    sample across sources and families, not the first ones in alphabetical order)."""
    ids = sorted({r["problem_id"] for r in records}, key=lambda pid: hashlib.sha256(pid.encode()).hexdigest())
    chosen = set(ids[:problems])
    return sorted(
        (r for r in records if r["problem_id"] in chosen), key=lambda r: (r["problem_id"], r["budget_tokens"])
    )


def run_probe(
    model_dir: str, records: Sequence[Mapping[str, Any]], spec: BudgetSpec, cfg: ProbeConfig, label: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate, score and summarise; returns (one row per generation, budget-following summary)."""
    from infra.engines.hf import HFEngine

    prompts = probe_prompts(records, cfg.problems)
    if not prompts:
        return [], {}
    engine = HFEngine(HFEngineConfig(model=label, max_batch_size=cfg.batch_size), model_dir)
    params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens, seed=0)
    requests = [GenerationRequest(f"{r['problem_id']}@{r['budget_tokens']}", r["prompt"], params) for r in prompts]
    results = engine.generate(requests)
    texts = [result.completions[0].text if result.completions else "" for result in results]
    # An output that never closes its think block is counted at its generated length.
    lengths = HFTokenCounter(engine.tokenizer).count_many(
        [
            (think.reasoning if think.reasoning is not None else text)
            for text, think in ((t, parse_think(t)) for t in texts)
        ]
    )
    rows = []
    for record, text, length in zip(prompts, texts, lengths, strict=True):
        scored = score(
            text,
            record["answer"],
            int(record["budget_tokens"]),
            spec,
            length,
            record["grader"],
            json.loads(record["meta"]),
        )
        rows.append(
            {
                "model": label,
                "problem_id": record["problem_id"],
                "budget_tokens": int(record["budget_tokens"]),
                "reasoning_tokens": length,
                "correct": bool(scored.correct),
                "parsed": scored.parsed,
                "fidelity": scored.fidelity,
                "reward": scored.reward,
                "text": text,
            }
        )
    return rows, {**budget_following(rows, spec), "precision": engine.precision.stats()}
