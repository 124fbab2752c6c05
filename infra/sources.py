"""Problem sources resolved by kind: the toy world, bundled files, local files, Hugging Face datasets."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bard_core.config import BundledSourceConfig, FileSourceConfig, HFSourceConfig, SourceConfig, ToySourceConfig
from bard_core.grading import GraderKind
from bard_core.problems import FieldMap, ProblemFileError, RawRow, SourceRow, bundled, read_problem_file
from bard_core.toy.world import toy_rows


def _toy(cfg: Any) -> Iterable[RawRow]:
    assert isinstance(cfg, ToySourceConfig)
    return toy_rows(cfg.size, cfg.seed, [(f.family, f.weight, f.difficulty) for f in cfg.families])


def _bundled(cfg: Any) -> Iterable[SourceRow]:
    assert isinstance(cfg, BundledSourceConfig)
    data = bundled(cfg.name)
    return read_problem_file(data.path, FieldMap(), f"bundled/{cfg.name}")


def _file(cfg: Any) -> Iterable[SourceRow]:
    assert isinstance(cfg, FileSourceConfig)
    fields = FieldMap(cfg.id_field, cfg.problem_field, cfg.answer_field)
    return read_problem_file(Path(cfg.path), fields, f"file/{Path(cfg.path).name}", cfg.max_bad_row_share)


def _hf(cfg: Any) -> Iterable[RawRow]:
    assert isinstance(cfg, HFSourceConfig)
    from datasets import load_dataset

    try:
        dataset = load_dataset(cfg.dataset, cfg.subset, split=cfg.hf_split, revision=cfg.revision)
    except Exception as exc:  # the hub client raises many types; all mean "could not load"
        raise ProblemFileError(
            f"Hugging Face dataset {cfg.dataset!r} (subset={cfg.subset}, split={cfg.hf_split}) could not be loaded: "
            f"{type(exc).__name__}: {exc}. Offline? Warm the HF cache and set HF_DATASETS_OFFLINE=1, or export it "
            "to JSONL/Parquet and use a `kind: file` source"
        ) from exc
    fields = FieldMap(cfg.id_field, cfg.problem_field, cfg.answer_field)
    missing = [f for f in fields.required() if f not in dataset.column_names]
    if missing:
        raise ProblemFileError(
            f"hf:{cfg.dataset}: missing column(s) {missing} (present: {dataset.column_names}); "
            "set id_field/problem_field/answer_field"
        )
    source = f"hf/{cfg.dataset}"
    for index, row in enumerate(dataset, start=1):
        problem_id = str(row[cfg.id_field]) if cfg.id_field else None
        yield RawRow(source, index, problem_id, row[cfg.problem_field], row[cfg.answer_field])


SOURCES: dict[str, Callable[[Any], Iterable[SourceRow]]] = {"toy": _toy, "bundled": _bundled, "file": _file, "hf": _hf}


def source_rows(cfg: SourceConfig) -> Iterable[SourceRow]:
    return SOURCES[cfg.kind](cfg)


def source_grader(cfg: SourceConfig) -> GraderKind:
    if isinstance(cfg, ToySourceConfig):
        return GraderKind.REASONING_GYM
    if isinstance(cfg, BundledSourceConfig):
        return cfg.grader or bundled(cfg.name).grader
    return cfg.grader


def source_content_hash(cfg: SourceConfig) -> str | None:
    """Hash of a source file's bytes, so editing the file changes the ingest fingerprint."""
    if isinstance(cfg, BundledSourceConfig):
        path = bundled(cfg.name).path
    elif isinstance(cfg, FileSourceConfig):
        path = Path(cfg.path)
        if not path.is_file():
            raise ProblemFileError(f"{path}: file not found (source kind: file)")
    else:
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()
