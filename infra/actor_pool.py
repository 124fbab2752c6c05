"""Running a batch job over shards on a Ray Data actor pool, handing back each shard as it completes.

A *job* is built once per actor (engine, tokenizer) and maps a batch of input rows to, for each input
row, one or more output rows. Each input shard becomes one Ray Data block; outputs are regrouped by
shard on the driver and handed to ``on_shard`` as soon as every input row of that shard came back, so
a stage can persist shards while later ones are still generating.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from bard_core.config import ResourcesConfig
from bard_core.engine import Usage

log = logging.getLogger(__name__)

SHARD, ROW = "__shard", "__row"
USAGE_COLUMNS = ("__requests", "__failed_requests", "__prompt_tokens", "__completion_tokens", "__cpu_s")


class BatchJob(Protocol):
    """Per-actor state plus the batch function; must be built inside the actor (engines are not picklable)."""

    schema: pa.Schema

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]: ...


class JobActor:
    """The Ray Data callable class: builds the job once, then serves batches."""

    def __init__(self, job_factory: Callable[[], BatchJob]) -> None:
        self.job = job_factory()

    def __call__(self, batch: pa.Table) -> pa.Table:
        cpu0 = time.process_time()
        rows = batch.to_pylist()
        outputs, usage = self.job.process(rows)
        flat: list[dict[str, Any]] = []
        for row, produced in zip(rows, outputs, strict=True):
            if not produced:
                raise RuntimeError(f"job produced no output for input row {row.get(ROW)} of shard {row.get(SHARD)}")
            flat += [{**out, SHARD: row[SHARD], ROW: row[ROW]} for out in produced]
        table = pa.Table.from_pylist(
            flat, schema=self.job.schema.append(pa.field(SHARD, pa.int32())).append(pa.field(ROW, pa.int32()))
        )
        # Usage rides on the first row of the batch (zeros elsewhere), so column sums are batch totals.
        counts = usage.as_dict()
        values = [counts["requests"], counts["failed_requests"], counts["prompt_tokens"], counts["completion_tokens"]]
        values.append(time.process_time() - cpu0)
        for name, value in zip(USAGE_COLUMNS, values, strict=True):
            table = table.append_column(name, pa.array([value] + [0] * (table.num_rows - 1), pa.float64()))
        return table


def run_actor_pool(
    shards: Mapping[int, pa.Table],
    job_factory: Callable[[], BatchJob],
    resources: ResourcesConfig,
    on_shard: Callable[[int, pa.Table], None],
    label: str,
) -> dict[str, float]:
    """Process ``shards`` ({index: input table}); returns usage totals (requests, tokens, worker CPU s)."""
    import ray
    from ray.data import ActorPoolStrategy

    if not shards:
        return {}
    blocks = []
    expected: dict[int, int] = {}
    for index, table in sorted(shards.items()):
        blocks.append(
            table.append_column(SHARD, pa.array([index] * table.num_rows, pa.int32())).append_column(
                ROW, pa.array(range(table.num_rows), pa.int32())
            )
        )
        expected[index] = table.num_rows
    dataset = ray.data.from_arrow(blocks).map_batches(
        JobActor,
        fn_constructor_kwargs={"job_factory": job_factory},
        compute=ActorPoolStrategy(size=min(resources.replicas, len(blocks))),
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        num_cpus=resources.cpus_per_replica,
        num_gpus=resources.gpus_per_replica or None,
    )
    buffers: dict[int, list[pa.Table]] = defaultdict(list)
    seen: dict[int, set[int]] = defaultdict(set)
    totals = dict.fromkeys(USAGE_COLUMNS, 0.0)
    completed: set[int] = set()
    t0 = time.perf_counter()
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        for name in USAGE_COLUMNS:
            totals[name] += float(pc.sum(batch.column(name)).as_py() or 0.0)
        batch = batch.drop_columns(list(USAGE_COLUMNS))
        for index in pc.unique(batch.column(SHARD)).to_pylist():
            part = batch.filter(pc.equal(batch.column(SHARD), index))
            buffers[index].append(part)
            seen[index].update(part.column(ROW).to_pylist())
            if len(seen[index]) == expected[index]:
                table = pa.concat_tables(buffers.pop(index)).sort_by([(ROW, "ascending")])
                on_shard(index, table.drop_columns([SHARD, ROW]))
                completed.add(index)
                log.info(
                    "%s: shard %d done (%d/%d, %.1f s)",
                    label,
                    index,
                    len(completed),
                    len(blocks),
                    time.perf_counter() - t0,
                )
    missing = sorted(set(expected) - completed)
    if missing:
        raise RuntimeError(f"{label}: shards {missing} did not complete; rerun the stage to redo only those")
    return {name.strip("_"): round(value, 3) for name, value in totals.items()}
