"""Stage 3 `compress`: every gold trace to every tier below its length, validated, retried, recorded."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.compression import FEEDBACK_FIELDS, USER_FIELDS, jobs_for
from bard_core.engine import SamplingParams
from bard_core.prompting import load_prompt
from infra.engines import engine_identity
from infra.jobs import CompressJobSpec
from infra.store import ArtifactRef
from infra.writer import ArtifactWriter
from tasks.sample import read_problems
from tasks.stage import StageContext, StageResult, StageSpec, engine_worker, execute, run_sharded

VERSION = 1


def read_gold(ctx: StageContext, traces: ArtifactRef, stage: str) -> pa.Table:
    table = schemas.conform(
        ctx.store.read_table(traces, "traces"), schemas.TRACES, f"artifact {traces.key} (traces)", stage
    )
    return table.filter(pc.and_(table.column("is_gold"), table.column("correct")))


@task(name="compress", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def compress(ctx: StageContext, traces: ArtifactRef, problems: ArtifactRef, tokenizer: ArtifactRef) -> ArtifactRef:
    cfg = ctx.cfg.compress
    budget = ctx.cfg.budget
    config = {**cfg.model_dump(mode="json", exclude={"resources"}), "budget": budget.model_dump(mode="json")}
    config["engine"] = engine_identity(cfg.engine)
    prompt_refs = (cfg.system_template, cfg.user_template, cfg.feedback_template)
    load_prompt(cfg.user_template).require(USER_FIELDS)
    load_prompt(cfg.feedback_template).require(FEEDBACK_FIELDS)
    inputs = {"traces": traces, "problems": problems, "tokenizer": tokenizer}
    spec = StageSpec("compress", VERSION, config, prompt_refs, inputs)

    def build(writer: ArtifactWriter) -> StageResult:
        gold = read_gold(ctx, traces, "compress").to_pylist()
        by_id = {p["problem_id"]: p for p in read_problems(ctx, problems, "compress").to_pylist()}
        jobs = sorted(jobs_for(gold, by_id, budget.spec()), key=lambda j: (j.problem_id, j.budget_tokens))
        if not jobs:
            raise ValueError("no compression jobs: no gold trace is longer than the smallest tier; lower the tiers")
        rows = [{**asdict(job), "meta": json.dumps(dict(job.meta))} for job in jobs]
        s = cfg.sampling
        job = CompressJobSpec(
            worker=engine_worker(ctx, cfg.engine, tokenizer),
            prompts=prompt_refs,
            budget=budget.spec(),
            params=SamplingParams(1, s.temperature, s.top_p, s.max_new_tokens, s.seed),
            max_attempts=cfg.max_attempts,
        )
        conform = partial(schemas.conform, schema=schemas.TIERS, artifact="compress output", stage="compress")
        usage = run_sharded(
            ctx, writer, "tiers", pa.Table.from_pylist(rows), cfg.shard_rows, job, cfg.resources, conform
        )
        return StageResult(stats=tier_stats(writer.read_table("tiers"), len(gold)), usage=usage)

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
