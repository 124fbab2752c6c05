"""Running an engine-backed stage (sample, compress): shards on the actor pool, budget, accounting.

Shards an interrupted attempt left behind are verified and reused, with their engine usage; the
query budget (OpenAI-compatible engines) starts from what those shards already spent and is shared by
every replica through one named actor; the manifest gets requests, tokens, cost, tokens/s, replicas and
CPU/GPU seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from bard_core import schemas
from bard_core.config import EngineConfig, OpenAIEngineConfig, ResourcesConfig
from bard_core.engine import USAGE_FIELDS
from bard_pipeline.infra.actor_pool import BatchJob, run_actor_pool
from bard_pipeline.infra.engines import actor_options, engine_identity, loads_weights
from bard_pipeline.infra.faults import maybe_fail
from bard_pipeline.infra.jobs import EngineWorker
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, logger


@dataclass(frozen=True)
class EngineSetup:
    engine: EngineConfig
    resources: ResourcesConfig
    tokenizer: ArtifactRef
    model: ModelLocation | None

    def identity(self) -> dict[str, object]:
        """The engine's part of the stage fingerprint."""
        return engine_identity(self.engine, self.model.identity if self.model else None)


def engine_setup(
    engine: EngineConfig, resources: ResourcesConfig, tokenizer: ArtifactRef, models: dict[str, ModelLocation]
) -> EngineSetup:
    model = models[engine.model] if loads_weights(engine) else None
    return EngineSetup(engine, resources, tokenizer, model)


def run_engine_stage(
    ctx: StageContext,
    writer: ArtifactWriter,
    table_name: str,
    inputs: pa.Table,
    shard_rows: int,
    setup: EngineSetup,
    make_job: Callable[[EngineWorker], Callable[[], BatchJob]],
    schema: pa.Schema,
    group_by: tuple[str, ...] = (),
    max_requests: int | None = None,
) -> tuple[dict[str, float], str]:
    """Process ``inputs`` in fixed shards, each output conformed to ``schema``; returns the stage's usage
    and throughput figures, and what ran. No input still commits one empty shard: the table exists. An engine
    call gets rows of one ``group_by`` group only (e.g. one token limit). ``max_requests`` caps an
    OpenAI-compatible engine's query ledger below its own `max_requests` (BRIDGE's teacher budget)."""
    log = logger()
    stage = writer.ref.stage

    def conform(table: pa.Table) -> pa.Table:
        return schemas.conform(table, schema, f"{stage} output", stage)

    if inputs.num_rows == 0:
        writer.write_shard(table_name, 0, schema.empty_table())
        return _accounting({}, {}, setup.resources, 0, 0), "none (no input)"
    count = math.ceil(inputs.num_rows / shard_rows)
    shards = {i: inputs.slice(i * shard_rows, shard_rows) for i in range(count)}
    layout = f"{shard_rows} of {inputs.num_rows} rows per shard"  # which rows shard i covers
    resumed = writer.resume_shards(table_name, layout)
    todo = {i: table for i, table in shards.items() if i not in resumed}
    if resumed:
        log.info("%s: %d of %d shards reused from an interrupted attempt", writer.ref.stage, len(resumed), count)
    written = 0

    def on_shard(index: int, table: pa.Table, usage: dict[str, float], backend: str) -> None:
        nonlocal written
        writer.write_shard(table_name, index, conform(table), usage, backend, layout)
        written += 1
        maybe_fail(writer.ref.stage, shards_done=written)

    new: dict[str, Any] = {}
    if todo:
        ctx.ray.ensure()
        budget_actor = _start_budget(setup.engine, writer, max_requests)
        try:
            worker = EngineWorker(
                engine=setup.engine,
                store_root=ctx.store.root,
                endpoint_url=ctx.store.endpoint_url,
                tokenizer_ref=setup.tokenizer.key,
                model_location=setup.model.location if setup.model else None,
                model_revision=setup.model.revision if setup.model else None,
                budget_actor=budget_actor,
            )
            options = actor_options(setup.engine, setup.resources)
            r = setup.resources
            new = run_actor_pool(
                todo,
                make_job(worker),
                r.replicas,
                r.batch_size,
                options,
                on_shard,
                stage,
                f"{stage} {table_name}",
                group_by,
            )
        finally:
            _stop_budget(budget_actor)
    backends = {b for b in (*writer.resumed_backends, *str(new.get("backend", "")).split("; ")) if b}
    backend = "; ".join(sorted(backends))
    return _accounting(writer.resumed_usage, new, setup.resources, count, len(resumed)), backend


def _start_budget(engine: EngineConfig, writer: ArtifactWriter, cap_requests: int | None = None) -> Any:
    if not isinstance(engine, OpenAIEngineConfig):
        return None
    limits = [n for n in (engine.max_requests, cap_requests) if n is not None]
    max_requests = min(limits) if limits else None
    if max_requests is None and engine.max_cost_usd is None:
        return None
    from bard_pipeline.infra.engines.budget import start_budget_actor

    spent_calls = int(writer.resumed_usage.get("calls", 0))
    spent_usd = float(writer.resumed_usage.get("cost_usd", 0.0))
    actor = start_budget_actor(max_requests, engine.max_cost_usd, spent_calls, spent_usd)
    logger().info(
        "query budget: max_requests=%s max_cost_usd=%s (already spent: %d calls, $%.4f)",
        max_requests,
        engine.max_cost_usd,
        spent_calls,
        spent_usd,
    )
    return actor


def _stop_budget(actor: Any) -> None:
    if actor is None:
        return
    import ray

    ray.kill(actor)


def _accounting(
    resumed: dict[str, float], new: dict[str, Any], resources: ResourcesConfig, shards: int, reused: int
) -> dict[str, float]:
    usage = {name: resumed.get(name, 0.0) + new.get(name, 0.0) for name in (*USAGE_FIELDS, "worker_cpu_s")}
    wall = new.get("pool_wall_s", 0.0)
    usage.update(
        shards=shards,
        shards_reused=reused,
        replicas=resources.replicas,
        pool_wall_s=wall,
        pool_startup_s=new.get("startup_s", 0.0),  # until the first replica was ready (weights loaded)
        completion_tokens_per_s=round(new.get("completion_tokens", 0.0) / wall, 2) if wall else 0.0,
        gpu_s_reserved=round(wall * resources.replicas * resources.gpus_per_replica, 2),
    )
    return usage
