"""The `sample` stage: n teacher samples per problem, each graded; the gold trace of each problem marked."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.config import RunConfig
from bard_core.engine import SamplingParams
from bard_core.prompting import load_prompt
from bard_core.sampling import TEACHER_FIELDS
from bard_pipeline.infra.jobs import EngineWorker, SampleJobSpec
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.engine_stage import EngineSetup, engine_setup, run_engine_stage
from bard_pipeline.tasks.inputs import read_input
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, stage_config

VERSION = 3  # 3: traces carry their author


def sample_spec(
    cfg: RunConfig, setup: EngineSetup, problems: ArtifactRef, tokenizer: ArtifactRef, selection: ArtifactRef | None
) -> StageSpec:
    section = cfg.sample
    prompts = (section.prompt_template,) + ((section.system_prompt,) if section.system_prompt else ())
    config = stage_config(section, engine=setup.identity())
    inputs = {"problems": problems, "tokenizer": tokenizer} | ({"selection": selection} if selection else {})
    return StageSpec("sample", VERSION, config, prompts, inputs)


def _chosen(ctx: StageContext, table: pa.Table, selection: ArtifactRef) -> tuple[pa.Table, int]:
    """The problems BRIDGE's `select` chose, and the teacher budget (in requests) it chose them for."""
    chosen = read_input(ctx, selection, "selection", schemas.SELECTION, "sample")
    ids = chosen.filter(chosen.column("chosen")).column("problem_id")
    budget = int(ctx.store.manifest(selection).stats["teacher_budget"])
    return table.filter(pc.is_in(table.column("problem_id"), ids)), budget


@task(name="sample", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def sample(
    ctx: StageContext,
    problems: ArtifactRef,
    tokenizer: ArtifactRef,
    models: dict[str, ModelLocation],
    selection: ArtifactRef | None = None,
) -> ArtifactRef:
    """The teacher on every training problem, or (BRIDGE) on the problems `selection` chose only, inside the
    teacher budget: an OpenAI-compatible teacher's query ledger is capped at it, retries included."""
    cfg = ctx.cfg.sample
    setup = engine_setup(cfg.engine, cfg.resources, tokenizer, models)
    spec = sample_spec(ctx.cfg, setup, problems, tokenizer, selection)
    for ref in (cfg.prompt_template, cfg.system_prompt):  # fail at start, not in an engine actor
        if ref is not None:
            load_prompt(ref).require(TEACHER_FIELDS)

    def build(writer: ArtifactWriter) -> StageResult:
        table = read_input(ctx, problems, "problems", schemas.PROBLEMS, "sample")
        table = table.filter(pc.is_in(table.column("split"), pa.array(list(cfg.splits)))).sort_by("problem_id")
        if table.num_rows == 0:
            raise ValueError(f"no problems in splits {list(cfg.splits)} to sample; check ingest sources' split")
        max_requests = None
        if selection is not None:
            table, max_requests = _chosen(ctx, table, selection)
        s = cfg.sampling
        params = SamplingParams(cfg.n_samples, s.temperature, s.top_p, s.max_new_tokens, s.seed)

        def make_job(worker: EngineWorker) -> SampleJobSpec:
            return SampleJobSpec(worker, cfg.prompt_template, cfg.system_prompt, params, cfg.selection)

        usage, backend = run_engine_stage(
            ctx, writer, "traces", table, cfg.shard_rows, setup, make_job, schemas.TRACES, max_requests=max_requests
        )
        stats = trace_stats(writer.read_table("traces", schemas.TRACES), table.num_rows)
        return StageResult(stats={**stats, "engine_backend": backend}, usage=usage)

    return execute(ctx, spec, build)


def trace_stats(traces: pa.Table, problems: int) -> dict[str, object]:
    rows = traces.select(["problem_id", "correct", "is_gold", "finish_reason", "reasoning_tokens", "error"]).to_pylist()
    gold = [r for r in rows if r["is_gold"]]
    return {
        "problems": problems,
        "samples": len(rows),
        "correct": sum(r["correct"] for r in rows),
        "accuracy": round(sum(r["correct"] for r in rows) / max(len(rows), 1), 4),
        "with_think_block": traces.num_rows - traces.column("reasoning").null_count,
        "problems_with_gold": len(gold),
        "problems_without_gold": problems - len(gold),
        "gold_mean_reasoning_tokens": round(sum(r["reasoning_tokens"] for r in gold) / max(len(gold), 1), 1),
        "finish_reasons": dict(Counter(r["finish_reason"] for r in rows)),
        "engine_errors": sum(r["error"] is not None for r in rows),
    }
