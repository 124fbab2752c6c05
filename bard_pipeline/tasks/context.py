"""Opening and closing the per-run context: store, lazy Ray session, run manifest, stage selection.

Closing a run adds its ``cost`` (``bard_core.cost``: the teacher's requests, tokens and dollars; seconds per
stage and role) to the run manifest and, inside a flow run, publishes it as the ``run-cost`` markdown artifact.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext

from bard_core.config import RunConfig
from bard_core.cost import RunCost, cost_markdown, reused_stages, run_cost, training_gpus
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore, utc_now
from bard_pipeline.tasks.stage import STAGES, RunRecord, StageContext, logger

UNTIL_STAGES = ("materialize", "sft", "rl", "evaluate")


def open_context(
    cfg: RunConfig,
    recipe: str | None,
    overrides: Sequence[str],
    stages: Sequence[str] | None,
    from_run: str | None,
    until: str | None,
    run_id: str | None,
) -> StageContext:
    unknown = sorted({*(stages or ()), *([until] if until else [])} - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are: {', '.join(STAGES)}")
    if stages and until is None:
        # Selecting stages means "run these": stop after the last one (the data stages run as a block).
        until = STAGES[max(STAGES.index(s) for s in [*stages, "materialize"])]
    if until is not None and until not in UNTIL_STAGES:
        raise ValueError(
            f"until={until!r}: the flow can stop after {', '.join(UNTIL_STAGES)}; the data stages run together "
            "(to run fewer of them, select them with `stages`)"
        )
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    reuse: dict[str, str] = {}
    if from_run:
        earlier = store.read_run(store.resolve_run(from_run))  # a full id or a unique prefix of one
        reuse = {name: info["artifact"] for name, info in earlier["stages"].items()}
    run = RunRecord(
        run_id=run_id or uuid.uuid4().hex,
        name=cfg.name,
        recipe=recipe,
        overrides=list(overrides),
        config=cfg.model_dump(mode="json"),
    )
    store.write_run(run.run_id, run.as_dict())
    selected = frozenset(stages) if stages else frozenset(STAGES)
    return StageContext(
        cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=selected, reuse=reuse, until=until
    )


def record_cost(store: ArtifactStore, record: Mapping[str, Any]) -> RunCost:
    """The cost of the run manifest ``record``: its stages' manifests, which of them it reused, and the GPUs
    its config gave the training workers."""
    stages: Mapping[str, Mapping[str, Any]] = record.get("stages", {})
    manifests = {
        key: store.manifest(ArtifactRef.parse(info["artifact"])).model_dump(mode="json") for key, info in stages.items()
    }
    return run_cost(manifests, reused_stages(stages), training_gpus(record.get("config", {})))


def close_context(ctx: StageContext, ok: bool) -> None:
    ctx.ray.shutdown()
    ctx.run.status = "completed" if ok else "failed"
    record = {**ctx.run.as_dict(), "finished_at": utc_now()}
    cost = _cost(ctx, record)
    if cost is not None:
        record["cost"] = cost.as_dict()
    ctx.store.write_run(ctx.run.run_id, record)
    if ok:
        ctx.store.tag(ctx.cfg.name, ctx.run.run_id)
    if cost is not None and (FlowRunContext.get() or TaskRunContext.get()):  # outside a run: no UI to publish to
        create_markdown_artifact(
            key="run-cost",
            markdown=f"### What this run cost\n\n{cost_markdown(cost)}",
            description=f"{ctx.run.name}: teacher requests, tokens and dollars; seconds per stage and role",
        )


def _cost(ctx: StageContext, record: Mapping[str, Any]) -> RunCost | None:
    # Closing must not fail a run (or hide why it failed) over its summary: a manifest that cannot be read
    # leaves the cost out, with a warning that says so.
    try:
        return record_cost(ctx.store, record)
    except Exception as exc:  # any store error: the run's own outcome matters more
        logger().warning("run %s: cost left out of the run manifest (%s: %s)", ctx.run.run_id, type(exc).__name__, exc)
        return None
