"""The budget-following probe: the evaluation (``bard_core.evaluation.evaluate_batch``, judged by
``bard_core.judge``) on the validation split, greedy, one sample, at every budget tier.

Training stages run it on the driver after fitting (and on the base model before SFT), so that every
checkpoint artifact says how well its reasoning length follows the requested budget, and how accurate it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core import schemas
from bard_core.budget import BudgetSpec, HFTokenCounter
from bard_core.config import HFEngineConfig, ProbeConfig
from bard_core.engine import Engine
from bard_core.evaluation import EvalSettings, evaluate_batch
from bard_core.metrics import budget_following
from bard_core.truncation import TokenCodec


def probe_prompts(records: Sequence[Mapping[str, Any]], problems: int) -> list[Mapping[str, Any]]:
    """All tiers of ``problems`` problems of an RL prompt table, chosen by a hash of their ids (a stable
    sample across sources and families, not the first ones in alphabetical order)."""
    ids = sorted({r["problem_id"] for r in records}, key=lambda pid: hashlib.sha256(pid.encode()).hexdigest())
    chosen = set(ids[:problems])
    return sorted(
        (r for r in records if r["problem_id"] in chosen), key=lambda r: (r["problem_id"], r["budget_tokens"])
    )


# The probe's "benchmark": the dataset's validation split, every problem at every tier.
PROBE_BENCHMARK = "validation"


def probe_requests(records: Sequence[Mapping[str, Any]], label: str) -> list[dict[str, Any]]:
    """RL validation records (their prompts already carry the budget) as budgeted eval request rows."""
    keys = ("problem_id", "budget_tokens", "prompt", "answer", "grader", "meta")
    mode = schemas.EvalMode.BUDGET.value
    return [{**{k: r[k] for k in keys}, "model": label, "benchmark": PROBE_BENCHMARK, "mode": mode} for r in records]


def probe_settings(spec: BudgetSpec, cfg: ProbeConfig, label: str) -> EvalSettings:
    """Greedy, one sample, a fixed generation limit (factor 0: ``max_new_tokens`` at every budget)."""
    return EvalSettings(label, spec, spec.tiers_tokens, 1, 0.0, 1.0, 0, 0.0, cfg.max_new_tokens)


def probe_row(generation: Mapping[str, Any]) -> dict[str, Any]:
    """A generation row as a probe row (``schemas.PROBE``)."""
    return {name: generation[name] for name in schemas.PROBE.names}


def probe_model(
    engine: Engine,
    counter: TokenCodec,
    records: Sequence[Mapping[str, Any]],
    spec: BudgetSpec,
    cfg: ProbeConfig,
    label: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The evaluation (``evaluate_batch``) of one model on the probe's problems; returns (one row per
    generation, budget-following summary)."""
    prompts = probe_prompts(records, cfg.problems)
    if not prompts:
        return [], {}
    generated, _usage = evaluate_batch(
        engine, counter, probe_requests(prompts, label), probe_settings(spec, cfg, label)
    )
    rows = [probe_row(g) for per_request in generated for g in per_request]
    return rows, budget_following(rows, spec)


def run_probe(
    model_dir: str, records: Sequence[Mapping[str, Any]], spec: BudgetSpec, cfg: ProbeConfig, label: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``probe_model`` on the driver with the HF engine, its precision added to the summary."""
    from bard_pipeline.infra.engines.hf import HFEngine

    if not probe_prompts(records, cfg.problems):
        return [], {}
    engine = HFEngine(HFEngineConfig(model=label, max_batch_size=cfg.batch_size), model_dir)
    rows, summary = probe_model(engine, HFTokenCounter(engine.tokenizer), records, spec, cfg, label)
    return rows, {**summary, "precision": engine.precision.stats()}
