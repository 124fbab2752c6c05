"""Problem sources resolved by kind: the toy world, bundled files, local files, Hugging Face datasets."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import assert_never

from bard_core.answer_extraction import REJECT_REASON, AnswerExtractionError, extract_answer
from bard_core.config import BundledSourceConfig, FileSourceConfig, HFSourceConfig, SourceConfig, ToySourceConfig
from bard_core.grading import GraderKind
from bard_core.problems import BadRow, FieldMap, ProblemFileError, RawRow, SourceRow, bundled, read_problem_file
from bard_core.toy.world import toy_rows


def _toy(cfg: ToySourceConfig) -> Iterable[RawRow]:
    return toy_rows(cfg.size, cfg.seed, [(f.family, f.weight, f.difficulty) for f in cfg.families], cfg.split)


def _bundled(cfg: BundledSourceConfig) -> Iterable[SourceRow]:
    data = bundled(cfg.name)
    return read_problem_file(data.path, FieldMap(), f"bundled/{cfg.name}")


def _file(cfg: FileSourceConfig) -> Iterable[SourceRow]:
    fields = FieldMap(cfg.id_field, cfg.problem_field, cfg.answer_field)
    return read_problem_file(Path(cfg.path), fields, f"file/{Path(cfg.path).name}", cfg.max_bad_row_share)


def _hf(cfg: HFSourceConfig) -> Iterable[SourceRow]:
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
        answer = row[cfg.answer_field]
        if cfg.answer_extractor is None:
            yield RawRow(source, index, problem_id, row[cfg.problem_field], answer)
            continue
        try:
            extracted = extract_answer(cfg.answer_extractor, answer, cfg.answer_pattern)
        except AnswerExtractionError as exc:
            yield BadRow(
                source, index, REJECT_REASON, f"answer_extractor {cfg.answer_extractor.value}: {exc}", problem_id
            )
            continue
        # The column's full text (gsm8k: the worked solution) stays with the problem, in its meta.
        yield RawRow(source, index, problem_id, row[cfg.problem_field], extracted, {cfg.answer_field: str(answer)})


def source_rows(cfg: SourceConfig) -> Iterable[SourceRow]:
    """The rows of one source, by ``kind`` (a new kind that is not handled here fails mypy)."""
    match cfg:
        case ToySourceConfig():
            return _toy(cfg)
        case BundledSourceConfig():
            return _bundled(cfg)
        case FileSourceConfig():
            return _file(cfg)
        case HFSourceConfig():
            return _hf(cfg)
        case _:
            assert_never(cfg)


def source_grader(cfg: SourceConfig) -> GraderKind:
    match cfg:
        case ToySourceConfig():
            return GraderKind.INTEGER if cfg.families[0].family.is_lab else GraderKind.REASONING_GYM
        case BundledSourceConfig():
            return cfg.grader or bundled(cfg.name).grader
        case FileSourceConfig() | HFSourceConfig():
            return cfg.grader
        case _:
            assert_never(cfg)


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
