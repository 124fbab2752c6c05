"""The `ingest` stage: problem sources -> the `problems` table, with rejected rows recorded and counted."""

from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.problems import ProblemCollector
from bard_pipeline.infra.sources import source_content_hash, source_grader, source_rows
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 2  # 2: the grader is a column of `problems`, no longer a key of its meta


@task(name="ingest", cache_policy=NO_CACHE)
def ingest(ctx: StageContext) -> ArtifactRef:
    cfg = ctx.cfg.ingest
    config = stage_config(cfg, source_sha256=[source_content_hash(source) for source in cfg.sources])
    spec = StageSpec("ingest", VERSION, config)

    def build(writer: ArtifactWriter) -> StageResult:
        log = logger()
        collector = ProblemCollector(max_problem_chars=cfg.max_problem_chars)
        per_source = {}
        for source in cfg.sources:
            before = len(collector.rejected)
            kept = collector.add(source_rows(source), source.split, source_grader(source), source.limit)
            label = getattr(source, "name", None) or getattr(source, "path", None) or source.kind
            per_source[f"{source.kind}:{label}"] = {"accepted": kept, "rejected": len(collector.rejected) - before}
            log.info("ingest %s: %d accepted, %d rejected", label, kept, len(collector.rejected) - before)
        if not collector.accepted:
            raise ValueError(
                f"ingest produced no problems (rejections: {collector.reason_counts()}); check the sources"
            )
        writer.write_table("problems", pa.Table.from_pylist(collector.accepted, schema=schemas.PROBLEMS))
        writer.write_table("rejections", pa.Table.from_pylist(collector.rejected, schema=schemas.REJECTIONS))
        splits: dict[str, int] = {}
        for row in collector.accepted:
            splits[row["split"]] = splits.get(row["split"], 0) + 1
        return StageResult(
            stats={
                "problems": len(collector.accepted),
                "splits": splits,
                "rejected": collector.reason_counts(),
                "sources": per_source,
            }
        )

    return execute(ctx, spec, build)
