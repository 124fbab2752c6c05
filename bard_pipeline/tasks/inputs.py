"""Reading a stage's input tables: every read checked against its contract in ``bard_core.schemas``.

The one place a stage task reads another stage's artifact, so that stage tasks stand on this module and
``bard_pipeline.tasks.stage`` only, never on each other.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bard_core import schemas
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.tasks.stage import StageContext


def read_input(ctx: StageContext, ref: ArtifactRef, table: str, schema: pa.Schema, stage: str) -> pa.Table:
    """Table ``table`` of artifact ``ref``, conformed to ``schema``; a mismatch names the artifact,
    the column and ``stage``, the reader that needed it."""
    return schemas.conform(ctx.store.read_table(ref, table), schema, f"artifact {ref.key} ({table})", stage)


def read_rows(ctx: StageContext, ref: ArtifactRef, table: str, schema: pa.Schema, stage: str) -> list[dict[str, Any]]:
    """``read_input`` as Python rows."""
    return list(read_input(ctx, ref, table, schema, stage).to_pylist())


def problems_by_id(ctx: StageContext, problems: ArtifactRef, stage: str) -> dict[str, dict[str, Any]]:
    """The ingested problems, by problem id."""
    return {p["problem_id"]: p for p in read_rows(ctx, problems, "problems", schemas.PROBLEMS, stage)}


def read_gold(ctx: StageContext, traces: ArtifactRef, stage: str) -> pa.Table:
    """The gold traces of a sample artifact: the marked trace of each problem, when it is correct."""
    table = read_input(ctx, traces, "traces", schemas.TRACES, stage)
    return table.filter(pc.and_(table.column("is_gold"), table.column("correct")))
