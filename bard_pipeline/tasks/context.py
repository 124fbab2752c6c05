"""Opening and closing the per-run context: store, lazy Ray session, run manifest, stage selection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from bard_core.config import RunConfig
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactStore, utc_now
from bard_pipeline.tasks.stage import STAGES, RunRecord, StageContext

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


def close_context(ctx: StageContext, ok: bool) -> None:
    ctx.ray.shutdown()
    ctx.run.status = "completed" if ok else "failed"
    record = {**ctx.run.as_dict(), "finished_at": utc_now()}
    ctx.store.write_run(ctx.run.run_id, record)
    if ok:
        ctx.store.tag(ctx.cfg.name, ctx.run.run_id)
