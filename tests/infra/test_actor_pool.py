"""The actor pool's blocks and its driver-side collector, without Ray."""

from __future__ import annotations

import pyarrow as pa

from bard_pipeline.infra.actor_pool import BACKEND, READY, ROW, SHARD, USAGE_COLUMNS, _blocks, _ShardCollector


def _shards(sizes: list[int]) -> dict[int, pa.Table]:
    start, out = 0, {}
    for index, size in enumerate(sizes):
        out[index] = pa.table({"x": list(range(start, start + size))})
        start += size
    return out


def test_blocks_are_full_batches_across_shard_boundaries() -> None:
    blocks, expected = _blocks(_shards([24, 24, 24, 5]), 32)
    assert [b.num_rows for b in blocks] == [32, 32, 13]  # not 24 / 24 / 24 / 5, nor 32 + 16 per bundle
    assert expected == {0: 24, 1: 24, 2: 24, 3: 5}
    rows = pa.concat_tables(blocks)
    assert rows.column("x").to_pylist() == list(range(77))  # every row once, in shard order
    assert rows.column(SHARD).to_pylist()[23:26] == [0, 1, 1] and rows.column(ROW).to_pylist()[23:26] == [23, 0, 1]


def test_a_block_never_mixes_groups() -> None:
    shards = {0: pa.table({"x": list(range(10)), "budget": [64] * 7 + [16] * 3})}
    blocks, _ = _blocks(shards, 4, ("budget",))
    assert [b["budget"].to_pylist() for b in blocks] == [[64] * 4, [64] * 3, [16] * 3]


def _output(block: pa.Table, ready: float) -> pa.Table:
    table = block
    for name in USAGE_COLUMNS:
        table = table.append_column(name, pa.array([1.0] + [0.0] * (table.num_rows - 1)))
    table = table.append_column(BACKEND, pa.array(["hf"] + [None] * (table.num_rows - 1), pa.string()))
    return table.append_column(READY, pa.array([ready] + [0.0] * (table.num_rows - 1)))


def test_collector_hands_on_whole_shards_and_reports_start_up() -> None:
    blocks, expected = _blocks(_shards([3, 3]), 4)
    done: dict[int, list[int]] = {}
    collector = _ShardCollector(expected, lambda i, t, usage, backend: done.update({i: t["x"].to_pylist()}), "t")
    collector.take(_output(blocks[0], collector.started_at + 2.5))
    assert done == {0: [0, 1, 2]}  # shard 1 has one row of four back
    collector.take(_output(blocks[1], 0.0))
    assert done == {0: [0, 1, 2], 1: [3, 4, 5]}
    summary = collector.summary()
    assert summary["startup_s"] == 2.5 and summary["backend"] == "hf"
