"""Running a batch job over shards on a Ray Data actor pool, handing back each shard as it completes.

A *job* is built once per actor (engine, tokenizer) and maps a batch of input rows to, for each input
row, one or more output rows. The input rows, in shard order, are cut into Ray Data blocks of one batch
each (so every call gets a full batch, whatever the shard size); outputs are regrouped by shard on the
driver and handed to ``on_shard`` as soon as every input row of that shard came back, so a stage can
persist shards while later ones are still generating.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from bard_core.engine import USAGE_FIELDS, Usage
from bard_pipeline.infra.faults import maybe_kill_actor
from bard_pipeline.infra.progress import Bar, verbose

log = logging.getLogger(__name__)

SHARD, ROW = "__shard", "__row"
USAGE_COLUMNS = (*(f"__{name}" for name in USAGE_FIELDS), "__worker_cpu_s")
BACKEND = "__backend"  # what ran: set on the first row of each batch
READY = "__ready_at"  # when the actor's job was built (epoch seconds): on the first row of its first batch


class BatchJob(Protocol):
    """Per-actor state plus the batch function; must be built inside the actor (engines are not picklable)."""

    schema: pa.Schema
    backend: str

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]: ...


class JobActor:
    """The Ray Data callable class: builds the job once, then serves batches (several at once, on threads,
    when the actor options ask for ``max_concurrency`` > 1: the job must then be thread-safe)."""

    def __init__(self, job_factory: Callable[[], BatchJob]) -> None:
        self.job = job_factory()
        self.ready_at = time.time()  # the pool's start-up ends when the first actor gets here
        self._calls = itertools.count(1)  # next() is atomic, so concurrent batches number themselves
        self._cpu_lock, self._cpu_counted = threading.Lock(), time.process_time()

    def __call__(self, batch: pa.Table) -> pa.Table:
        number = next(self._calls)
        maybe_kill_actor(number)  # test-only fault switch (infra.faults)
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
        values = [*usage.as_dict().values(), self._cpu_since(cpu0)]
        for name, value in zip(USAGE_COLUMNS, values, strict=True):
            table = table.append_column(name, pa.array([value] + [0] * (table.num_rows - 1), pa.float64()))
        table = table.append_column(BACKEND, pa.array([self.job.backend] + [None] * (table.num_rows - 1), pa.string()))
        ready = self.ready_at if number == 1 else 0.0
        return table.append_column(READY, pa.array([ready] + [0.0] * (table.num_rows - 1), pa.float64()))

    def _cpu_since(self, cpu0: float) -> float:
        """The process's CPU seconds from ``cpu0`` until now, less what an overlapping batch already counted
        (the process clock is shared by the batches running at once; counted once, the sum stays true)."""
        with self._cpu_lock:
            now = time.process_time()
            seconds, self._cpu_counted = now - max(cpu0, self._cpu_counted), now
        return seconds


def run_actor_pool(
    shards: Mapping[int, pa.Table],
    job_factory: Callable[[], BatchJob],
    replicas: int,
    batch_size: int,
    actor_options: Mapping[str, Any],
    on_shard: Callable[[int, pa.Table, dict[str, float], str], None],
    label: str,
    bar_label: str | None = None,
    group_by: Sequence[str] = (),
) -> dict[str, Any]:
    """Process ``shards`` ({index: input table}); returns usage totals and the pool's wall time.

    Output rows are keyed by (shard, input row): a batch that Ray re-executes after an actor died is
    counted once, so a shard is handed on complete, with no row missing and none twice. The progress bar
    (``bar_label``, default ``label``) counts the input rows whose outputs came back. A batch holds rows of
    one ``group_by`` group only (see ``_blocks``). ``actor_options`` with ``max_concurrency`` > 1 (an engine
    that overlaps batches, e.g. vLLM's ``batches_in_flight``) run that many batches per actor at once.
    """
    import ray
    from ray.data import ActorPoolStrategy

    if not shards:
        return {}
    if not verbose():
        _quiet_ray_data()
    blocks, expected = _blocks(shards, batch_size, group_by)
    # Ray Data runs one call per actor at a time unless told that the UDF may run on several threads.
    concurrent = int(actor_options.get("max_concurrency", 1)) > 1
    dataset = ray.data.from_arrow(blocks).map_batches(
        JobActor,
        fn_constructor_kwargs={"job_factory": job_factory},
        compute=ActorPoolStrategy(size=min(replicas, len(blocks)), enable_true_multi_threading=concurrent),
        batch_size=batch_size,
        batch_format="pyarrow",
        **actor_options,
    )
    collector = _ShardCollector(expected, on_shard, label)
    with Bar(bar_label or label, sum(expected.values()), "rows") as bar:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            collector.take(batch)
            bar.update(collector.rows_done())
    return collector.summary()


def _blocks(
    shards: Mapping[int, pa.Table], batch_size: int, group_by: Sequence[str] = ()
) -> tuple[list[pa.Table], dict[int, int]]:
    """The shards' rows in index order, each tagged (shard, row), cut into blocks of ``batch_size`` rows
    (shorter where a run of rows with equal ``group_by`` values ends, and at the end); and each shard's
    row count.

    A block is one batch, so every engine call gets ``batch_size`` rows whatever the shard size. (One block
    per shard, as before, made Ray Data bundle shards until a bundle held ``batch_size`` rows and then cut
    it into a full batch and a remainder: with 24-row shards and batches of 32, every other call got 16.)
    With ``group_by`` a batch never mixes groups: an engine batches only requests of one group (e.g. one
    token limit), so a batch across a group boundary would be two engine calls, one of them narrow.
    """
    tagged = []
    expected: dict[int, int] = {}
    for index, table in sorted(shards.items()):
        tagged.append(
            table.append_column(SHARD, pa.array([index] * table.num_rows, pa.int32())).append_column(
                ROW, pa.array(range(table.num_rows), pa.int32())
            )
        )
        expected[index] = table.num_rows
    rows = pa.concat_tables(tagged).combine_chunks()
    keys = list(zip(*(rows.column(name).to_pylist() for name in group_by), strict=True)) if group_by else []
    blocks, start = [], 0
    while start < rows.num_rows:
        end = min(start + batch_size, rows.num_rows)
        if keys:
            end = next((i for i in range(start + 1, end) if keys[i] != keys[start]), end)
        blocks.append(rows.slice(start, end - start))
        start = end
    return blocks, expected


class _ShardCollector:
    """On the driver: regroups output batches by shard, drops the rows of a re-executed batch, and hands
    each shard to ``on_shard`` (in input row order, with its usage and backend) once every row came back."""

    def __init__(
        self,
        expected: Mapping[int, int],
        on_shard: Callable[[int, pa.Table, dict[str, float], str], None],
        label: str,
    ) -> None:
        self.expected, self.on_shard, self.label = expected, on_shard, label
        self.buffers: dict[int, list[pa.Table]] = defaultdict(list)
        self.seen: dict[int, set[int]] = defaultdict(set)
        self.usage: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(USAGE_COLUMNS, 0.0))
        self.completed: set[int] = set()
        self.backends: dict[int, set[str]] = defaultdict(set)
        self.t0 = time.perf_counter()
        self.started_at = time.time()
        self.first_ready: float | None = None

    def rows_done(self) -> int:
        return sum(len(rows) for rows in self.seen.values())

    def take(self, batch: pa.Table) -> None:
        for index in pc.unique(batch.column(SHARD)).to_pylist():
            self._add(index, batch.filter(pc.equal(batch.column(SHARD), index)))

    def _add(self, index: int, part: pa.Table) -> None:
        rows = part.column(ROW).to_pylist()
        fresh = [r not in self.seen[index] for r in rows]
        if not all(fresh):
            log.warning(
                "%s: dropped %d duplicate rows of shard %d (a re-executed batch)", self.label, fresh.count(False), index
            )
            part = part.filter(pa.array(fresh))
        self.seen[index].update(rows)
        for name in USAGE_COLUMNS:
            self.usage[index][name] += float(pc.sum(part.column(name)).as_py() or 0.0)
        self.backends[index].update(v for v in part.column(BACKEND).to_pylist() if v)
        ready = [v for v in part.column(READY).to_pylist() if v]
        if ready:
            self.first_ready = min([*ready, *([self.first_ready] if self.first_ready else [])])
        self.buffers[index].append(part.drop_columns([*USAGE_COLUMNS, BACKEND, READY]))
        if len(self.seen[index]) == self.expected[index] and index not in self.completed:
            self._complete(index)

    def _complete(self, index: int) -> None:
        table = pa.concat_tables(self.buffers.pop(index)).sort_by([(ROW, "ascending")])
        backend = "; ".join(sorted(self.backends[index]))
        self.on_shard(index, table.drop_columns([SHARD, ROW]), _usage_dict(self.usage[index]), backend)
        self.completed.add(index)
        log.info(
            "%s: shard %d done (%d/%d, %.1f s)",
            self.label,
            index,
            len(self.completed),
            len(self.expected),
            time.perf_counter() - self.t0,
        )

    def summary(self) -> dict[str, Any]:
        """Usage totals, wall time, start-up time and backends of the pool; fails when a shard did not complete."""
        missing = sorted(set(self.expected) - self.completed)
        if missing:
            raise RuntimeError(f"{self.label}: shards {missing} did not complete; rerun the stage to redo only those")
        totals = dict.fromkeys(USAGE_COLUMNS, 0.0)
        for per_shard in self.usage.values():
            for name, value in per_shard.items():
                totals[name] += value
        backends = "; ".join(sorted(set().union(*self.backends.values())))
        log.info("%s: engine backend(s): %s", self.label, backends)
        # Start-up: from the pool's start until its first actor had built its job (process, imports, weights).
        startup = max(0.0, self.first_ready - self.started_at) if self.first_ready else 0.0
        return {**_usage_dict(totals), "pool_wall_s": round(time.perf_counter() - self.t0, 3),
                "startup_s": round(startup, 3), "backend": backends}  # fmt: skip


def _usage_dict(values: Mapping[str, float]) -> dict[str, float]:
    return {name.strip("_"): round(value, 6) for name, value in values.items()}


def _quiet_ray_data() -> None:
    """Ray Data's own progress (a log line per frame when stdout is not a terminal) and INFO lines about each
    dataset stay out of the terminal: the stage's bar says how far it is, and Ray Data still writes all of it
    to ``ray-data.log`` in the session's log folder. Errors still print."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)
