"""The `compress` stage: every gold trace to every tier below its length, validated, retried, recorded."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.compression import FEEDBACK_FIELDS, USER_FIELDS, jobs_for
from bard_core.config import CompressConfig, RunConfig
from bard_core.engine import SamplingParams
from bard_core.prompting import load_prompt
from bard_pipeline.infra.jobs import CompressJobSpec, EngineWorker
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.engine_stage import EngineSetup, engine_setup, run_engine_stage
from bard_pipeline.tasks.inputs import problems_by_id, read_gold
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 2


def prompt_refs(section: CompressConfig) -> tuple[str, str, str]:
    return section.system_template, section.user_template, section.feedback_template


def compress_spec(
    cfg: RunConfig, setup: EngineSetup, traces: ArtifactRef, problems: ArtifactRef, tokenizer: ArtifactRef
) -> StageSpec:
    config = stage_config(cfg.compress, engine=setup.identity(), budget=cfg.budget)
    inputs = {"traces": traces, "problems": problems, "tokenizer": tokenizer}
    return StageSpec("compress", VERSION, config, prompt_refs(cfg.compress), inputs)


@task(name="compress", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def compress(
    ctx: StageContext,
    traces: ArtifactRef,
    problems: ArtifactRef,
    tokenizer: ArtifactRef,
    models: dict[str, ModelLocation],
) -> ArtifactRef:
    cfg = ctx.cfg.compress
    budget = ctx.cfg.budget
    setup = engine_setup(cfg.engine, cfg.resources, tokenizer, models)
    spec = compress_spec(ctx.cfg, setup, traces, problems, tokenizer)
    load_prompt(cfg.user_template).require(USER_FIELDS)
    load_prompt(cfg.feedback_template).require(FEEDBACK_FIELDS)

    def build(writer: ArtifactWriter) -> StageResult:
        gold = read_gold(ctx, traces, "compress").to_pylist()
        by_id = problems_by_id(ctx, problems, "compress")
        jobs = sorted(jobs_for(gold, by_id, budget.spec()), key=lambda j: (j.problem_id, j.budget_tokens))
        if not jobs:
            # A weak teacher may solve nothing: an empty, committed result reports that honestly.
            logger().warning(
                "compress: nothing to compress (%d gold traces, none longer than the smallest tier %d)",
                len(gold),
                budget.tiers_tokens[0],
            )
        rows = [{**asdict(job), "meta": json.dumps(dict(job.meta))} for job in jobs]
        s = cfg.sampling
        params = SamplingParams(1, s.temperature, s.top_p, s.max_new_tokens, s.seed)

        def make_job(worker: EngineWorker) -> CompressJobSpec:
            return CompressJobSpec(worker, prompt_refs(cfg), budget.spec(), params, cfg.max_attempts)

        table = pa.Table.from_pylist(rows, schema=schemas.COMPRESS_JOBS)
        usage, backend = run_engine_stage(ctx, writer, "tiers", table, cfg.shard_rows, setup, make_job, schemas.TIERS)
        stats = tier_stats(writer.read_table("tiers", schemas.TIERS), len(gold))
        return StageResult(stats={**stats, "engine_backend": backend}, usage=usage)

    return execute(ctx, spec, build)


def tier_stats(tiers: pa.Table, gold_traces: int) -> dict[str, Any]:
    rows = tiers.select(["budget_tokens", "valid", "attempts", "reject_reason"]).to_pylist()
    per_tier: dict[str, dict[str, int]] = {}
    for row in rows:
        tier = per_tier.setdefault(str(row["budget_tokens"]), {"valid": 0, "rejected": 0})
        tier["valid" if row["valid"] else "rejected"] += 1
    return {
        "gold_traces": gold_traces,
        "jobs": len(rows),
        "valid": sum(r["valid"] for r in rows),
        "per_tier": dict(sorted(per_tier.items(), key=lambda kv: int(kv[0]))),
        "reject_reasons": dict(Counter(str(r["reject_reason"]).split(":")[0] for r in rows if not r["valid"])),
        "attempts": dict(sorted(Counter(str(r["attempts"]) for r in rows).items())),
    }
