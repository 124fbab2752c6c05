"""Problem sources -> rows of the ``problems`` artifact, with every rejected row counted and explained.

Two kinds of bad input are told apart:
- a *malformed file* (not UTF-8, not JSON, a required field absent, empty) raises ``ProblemFileError``
  naming the file and line: the user must fix the file or the field mapping;
- a *bad row* in a well-formed file (empty problem, no answer, duplicate) is rejected and recorded with a
  reason, and ingestion goes on.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bard_core.grading import GraderKind

DATA_DIR = Path(__file__).parent / "data"


class ProblemFileError(ValueError):
    """A problem file that cannot be read as the configured fields; the message names file and line."""


@dataclass(frozen=True)
class RawRow:
    """A row as read from a source, before validation."""

    source: str
    row: int | None  # 1-based line (JSONL) or row (Parquet) number
    problem_id: str | None
    problem: Any
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldMap:
    id_field: str | None = "id"
    problem_field: str = "problem"
    answer_field: str = "answer"

    def required(self) -> list[str]:
        return [f for f in (self.id_field, self.problem_field, self.answer_field) if f]


# --------------------------------------------------------------------------- bundled data


@dataclass(frozen=True)
class BundledDataset:
    name: str
    path: Path
    kind: str  # "benchmarks" or "train"
    grader: GraderKind


def bundled_datasets() -> dict[str, BundledDataset]:
    found = {}
    for path in sorted(DATA_DIR.glob("*/*.jsonl*")):
        name = path.name.split(".")[0]
        grader = GraderKind.CHOICE if name.startswith("mmlu") else GraderKind.MATH
        found[name] = BundledDataset(name, path, path.parent.name, grader)
    return found


def bundled(name: str) -> BundledDataset:
    available = bundled_datasets()
    if name not in available:
        raise ProblemFileError(f"no bundled dataset {name!r}; available: {', '.join(sorted(available))}")
    return available[name]


# --------------------------------------------------------------------------- readers


def _open_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from handle


def read_jsonl(path: Path, fields: FieldMap, source: str) -> Iterator[RawRow]:
    if not path.is_file():
        raise ProblemFileError(f"{path}: file not found")
    seen_rows = 0
    for lineno, raw in enumerate(_open_lines(path), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProblemFileError(
                f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line); re-encode the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProblemFileError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise ProblemFileError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        seen_rows += 1
        yield _raw_from_mapping(obj, fields, source, lineno, path)
    if seen_rows == 0:
        raise ProblemFileError(f"{path}: file is empty (no JSON rows); point the source at a file with problems")


def read_parquet(path: Path, fields: FieldMap, source: str) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ProblemFileError(f"{path}: file not found")
    table = pq.read_table(path)
    missing = [f for f in fields.required() if f not in table.column_names]
    if missing:
        raise ProblemFileError(
            f"{path}: missing column(s) {missing} (present: {table.column_names}); "
            "set id_field/problem_field/answer_field to the columns that hold them"
        )
    if table.num_rows == 0:
        raise ProblemFileError(f"{path}: file is empty (0 rows)")
    for index, obj in enumerate(table.to_pylist(), start=1):
        yield _raw_from_mapping(obj, fields, source, index, path)


def read_problem_file(path: Path, fields: FieldMap, source: str) -> Iterator[RawRow]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        return read_jsonl(path, fields, source)
    if name.endswith(".parquet"):
        return read_parquet(path, fields, source)
    raise ProblemFileError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz or .parquet")


def _raw_from_mapping(obj: dict[str, Any], fields: FieldMap, source: str, row: int, path: Path | str) -> RawRow:
    missing = [f for f in fields.required() if f not in obj]
    if missing:
        raise ProblemFileError(
            f"{path}:{row}: missing field(s) {missing} (present: {sorted(obj)}); add them, or set "
            "id_field/problem_field/answer_field in the source config to the fields that hold them"
        )
    problem_id = str(obj[fields.id_field]) if fields.id_field and obj[fields.id_field] is not None else None
    extras = {k: v for k, v in obj.items() if k not in fields.required() and _jsonable(v)}
    return RawRow(source, row, problem_id, obj[fields.problem_field], obj[fields.answer_field], extras)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- validation


def normalize_text(text: str) -> str:
    """Key for duplicate detection: NFKC, collapsed whitespace, case-folded."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


@dataclass
class ProblemCollector:
    """Accumulates accepted problems across sources; rejects empty, answerless and duplicate rows."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    _texts: dict[str, str] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)

    def add(self, rows: Iterable[RawRow], split: str, grader: GraderKind, limit: int | None) -> int:
        """Validate rows of one source; returns how many were accepted."""
        kept = 0
        for raw in rows:
            if limit is not None and kept >= limit:
                break
            problem_id = raw.problem_id or f"{raw.source.replace('/', '-')}-{raw.row:06d}"
            reason, detail = self._check(raw, problem_id)
            if reason:
                self.rejected.append(
                    {
                        "source": raw.source,
                        "row": raw.row,
                        "problem_id": problem_id,
                        "reason": reason,
                        "detail": detail,
                    }
                )
                continue
            self._texts[normalize_text(str(raw.problem))] = problem_id
            self._ids.add(problem_id)
            meta = {"grader": grader.value, **raw.meta}
            self.accepted.append(
                {
                    "problem_id": problem_id,
                    "source": raw.source,
                    "problem": str(raw.problem).strip(),
                    "answer": str(raw.answer).strip(),
                    "split": split,
                    "meta": json.dumps(meta, sort_keys=True, ensure_ascii=False),
                }
            )
            kept += 1
        return kept

    def _check(self, raw: RawRow, problem_id: str) -> tuple[str | None, str | None]:
        if raw.problem is None or not str(raw.problem).strip():
            return "empty_problem", "the problem text is empty"
        if raw.answer is None or not str(raw.answer).strip():
            return "missing_answer", "no reference answer, so samples cannot be graded"
        first = self._texts.get(normalize_text(str(raw.problem)))
        if first is not None:
            return "duplicate", f"same problem text as {first}"
        if problem_id in self._ids:
            return "duplicate_id", f"id {problem_id} already used by a different problem"
        return None, None

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rejected:
            counts[row["reason"]] = counts.get(row["reason"], 0) + 1
        return dict(sorted(counts.items()))
