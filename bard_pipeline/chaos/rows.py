"""Rows of a run, by key, to tell a faulted run from a clean one: what was lost, what was duplicated.

A row's key is its identifying columns (``KEY_COLUMNS`` that the table has: problem, budget, sample, model,
...), so tables whose text differs between runs (a resumed training's probe outputs) still compare; the
artifact fingerprints must match exactly. Counts, not sets: a row written twice is a duplicate even when its
key is otherwise present.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import table_name

KEY_COLUMNS = (
    "model",
    "benchmark",
    "split",
    "problem_id",
    "kind",
    "mode",
    "effort",
    "budget_tokens",
    "sample_idx",
    "reason",
    "step",
)  # fmt: skip  (the columns that identify a row in the pipeline's schemas; text and scores do not)


@dataclass(frozen=True)
class RunRows:
    """Every table row of a run's artifacts, as key counts per ``<stage>:<table>``."""

    artifacts: Mapping[str, str]  # stage -> "<stage>/<fingerprint>"
    rows: Mapping[str, Counter[tuple[Any, ...]]]

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.rows.values())

    def upto(self, stages: Collection[str]) -> RunRows:
        """Only the artifacts of ``stages`` (what a trial stopped with ``--until`` is compared on)."""
        keep = {s: key for s, key in self.artifacts.items() if s in stages}
        return RunRows(keep, {name: c for name, c in self.rows.items() if name.split(":", 1)[0] in keep})


@dataclass(frozen=True)
class RowDiff:
    lost: int
    duplicated: int
    artifacts_differ: tuple[str, ...] = ()  # stages whose artifact (fingerprint) is not the clean run's
    tables: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # table -> (lost, duplicated), where != 0

    @property
    def equal(self) -> bool:
        return not (self.lost or self.duplicated or self.artifacts_differ)


def _keys(table: Any) -> Counter[tuple[Any, ...]]:
    columns = [c for c in KEY_COLUMNS if c in table.column_names] or list(table.column_names)
    values = [table.column(c).to_pylist() for c in columns]
    return Counter(zip(*values, strict=True))


def run_rows(store: ArtifactStore, record: Mapping[str, Any]) -> RunRows:
    """The rows of every artifact a run record names (read and checksum-verified through the store)."""
    artifacts = {stage: info["artifact"] for stage, info in record.get("stages", {}).items()}
    rows: dict[str, Counter[tuple[Any, ...]]] = {}
    for stage, key in sorted(artifacts.items()):
        ref = ArtifactRef.parse(key)
        tables = sorted({table_name(f.name) for f in store.manifest(ref).files if f.rows is not None})
        for name in tables:
            rows[f"{stage}:{name}"] = _keys(store.read_table(ref, name))
    return RunRows(artifacts, rows)


def diff(clean: RunRows, trial: RunRows) -> RowDiff:
    """Rows of ``clean`` missing from ``trial`` (lost) and extra in it (duplicated), over both runs' tables."""
    lost = duplicated = 0
    tables: dict[str, tuple[int, int]] = {}
    for name in sorted(set(clean.rows) | set(trial.rows)):
        want, got = clean.rows.get(name, Counter()), trial.rows.get(name, Counter())
        table_lost, table_dup = sum((want - got).values()), sum((got - want).values())
        lost, duplicated = lost + table_lost, duplicated + table_dup
        if table_lost or table_dup:
            tables[name] = (table_lost, table_dup)
    stages = set(clean.artifacts) | set(trial.artifacts)
    differ = tuple(sorted(s for s in stages if clean.artifacts.get(s) != trial.artifacts.get(s)))
    return RowDiff(lost, duplicated, differ, tables)
