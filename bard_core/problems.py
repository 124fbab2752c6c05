"""Problem sources -> rows of the ``problems`` artifact, with every rejected row counted and explained.

Two kinds of bad input are told apart:
- a *malformed file* (not UTF-8, empty, a required field absent from every row, or more than
  ``max_bad_row_share`` of its rows bad) raises ``ProblemFileError`` naming the file and the fix: the user
  must fix the file or the field mapping;
- a *bad row* in a well-formed file (a line that is not JSON, a row lacking a required field, an empty or
  over-long problem, no answer, a duplicate) is rejected and recorded with a reason, and ingestion goes on.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
import zlib
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

DEFAULT_MAX_BAD_ROW_SHARE = 0.1


@dataclass(frozen=True)
class BadRow:
    """A line a reader could not turn into a row (not a JSON object, a required field missing): it is
    rejected and recorded like any bad row, unless so many are bad that the file itself is wrong."""

    source: str
    row: int  # 1-based line number
    reason: str  # "invalid_json" or "missing_field"
    detail: str
    problem_id: str | None = None


SourceRow = RawRow | BadRow


def _open_lines(path: Path) -> Iterator[bytes]:
    """The file's raw lines; a gzip file that ends early or is no gzip at all fails the whole file, naming the
    last line read, since what follows it is lost (a half-copied download, a plain file named .gz)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    lineno = 0
    with opener(path, "rb") as handle:
        try:
            for line in handle:
                lineno += 1
                yield line
        except (EOFError, OSError, zlib.error) as exc:
            where = f"after line {lineno}" if lineno else "from its start"
            raise ProblemFileError(
                f"{path}: unreadable {where} ({type(exc).__name__}: {exc}); the file is truncated or "
                "corrupt (or not gzip though named .gz): copy it again or re-compress it"
            ) from None


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines; bytes that are not UTF-8 fail the whole file, because
    re-encoding is the fix and every line after the first bad one is suspect."""
    for lineno, raw in enumerate(_open_lines(path), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProblemFileError(
                f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line); re-encode the file as UTF-8"
            ) from None
        # Windows tools write a byte-order mark (concatenated files: one per part) and CRLF endings;
        # json.loads takes the trailing \r as whitespace but rejects the mark.
        line = line.removeprefix("\ufeff")
        if line.strip():
            yield lineno, line


def _decode_object(text: str) -> dict[str, Any] | str:
    """The line's JSON object, or why it is not one."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:  # an integer past Python's 4300-digit limit
        return f"invalid JSON ({str(exc).split(':')[0]})"
    except RecursionError:
        return "invalid JSON (nested too deeply to parse)"
    if not isinstance(obj, dict):
        return f"expected a JSON object per line, got {type(obj).__name__}"
    try:  # a \ud800 escape parses to a lone surrogate, which no table (UTF-8) can store
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"invalid JSON (a string holds a lone surrogate escape \\u{ord(exc.object[exc.start]):04x})"
    return obj


def read_jsonl(
    path: Path, fields: FieldMap, source: str, max_bad_row_share: float = DEFAULT_MAX_BAD_ROW_SHARE
) -> list[SourceRow]:
    if not path.is_file():
        raise ProblemFileError(f"{path}: file not found")
    lines = [(lineno, _decode_object(text)) for lineno, text in _text_lines(path)]
    if not lines:
        raise ProblemFileError(f"{path}: file is empty (no JSON rows); point the source at a file with problems")
    _check_field_mapping(path, fields, [obj for _, obj in lines if isinstance(obj, dict)])
    rows = [
        _row_from_mapping(obj, fields, source, lineno)
        if isinstance(obj, dict)
        else BadRow(source, lineno, "invalid_json", obj)
        for lineno, obj in lines
    ]
    _check_bad_share(path, rows, max_bad_row_share)
    return rows


def _check_field_mapping(path: Path, fields: FieldMap, objects: list[dict[str, Any]]) -> None:
    """A required field that no row has is a wrong field mapping, not a few bad rows."""
    if not objects:
        return  # no row parsed at all: the bad-row share reports it, with the first line's error
    absent = [f for f in fields.required() if not any(f in obj for obj in objects)]
    if absent:
        present = sorted({key for obj in objects for key in obj})
        raise ProblemFileError(
            f"{path}: field(s) {absent} absent from every row (present: {present}); set "
            "id_field/problem_field/answer_field in the source config to the fields that hold them "
            "(id_field: null makes ids from line numbers)"
        )


def _check_bad_share(path: Path, rows: list[SourceRow], max_share: float) -> None:
    """Past a few bad rows the file is probably not what the user thinks it is: fail rather than ingest
    a fraction of it silently."""
    bad = [row for row in rows if isinstance(row, BadRow)]
    if bad and len(bad) / len(rows) > max_share:
        first = bad[0]
        raise ProblemFileError(
            f"{path}: {len(bad)} of {len(rows)} rows are bad ({len(bad) / len(rows):.0%}, over "
            f"max_bad_row_share={max_share}); first at line {first.row}: {first.detail}. Fix the file, or raise "
            "max_bad_row_share on the file source to load the good rows and record the bad ones as rejections"
        )


def read_parquet(path: Path, fields: FieldMap, source: str) -> list[SourceRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ProblemFileError(f"{path}: file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ProblemFileError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    missing = [f for f in fields.required() if f not in table.column_names]
    if missing:
        raise ProblemFileError(
            f"{path}: missing column(s) {missing} (present: {table.column_names}); "
            "set id_field/problem_field/answer_field to the columns that hold them"
        )
    if table.num_rows == 0:
        raise ProblemFileError(f"{path}: file is empty (0 rows)")
    return [_row_from_mapping(obj, fields, source, index) for index, obj in enumerate(table.to_pylist(), start=1)]


def read_problem_file(
    path: Path, fields: FieldMap, source: str, max_bad_row_share: float = DEFAULT_MAX_BAD_ROW_SHARE
) -> list[SourceRow]:
    """Every row of the file, bad ones as ``BadRow``. The whole file is read first: whether a field is
    absent from every row, or too many rows are bad, is only known at the end."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        return read_jsonl(path, fields, source, max_bad_row_share)
    if name.endswith(".parquet"):
        return read_parquet(path, fields, source)
    raise ProblemFileError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz or .parquet")


def _row_from_mapping(obj: dict[str, Any], fields: FieldMap, source: str, row: int) -> SourceRow:
    problem_id = str(obj[fields.id_field]) if fields.id_field and obj.get(fields.id_field) is not None else None
    missing = [f for f in fields.required() if f not in obj]
    if missing:
        return BadRow(source, row, "missing_field", f"missing field(s) {missing} (present: {sorted(obj)})", problem_id)
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
    """Accumulates accepted problems across sources; rejects unreadable, empty, over-long, answerless and
    duplicate rows."""

    max_problem_chars: int | None = None
    """Problems longer than this (after stripping) are rejected as ``too_long``; None: no limit."""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    _texts: dict[str, str] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set)

    def add(self, rows: Iterable[SourceRow], split: str, grader: GraderKind, limit: int | None) -> int:
        """Validate rows of one source; returns how many were accepted."""
        kept = 0
        for raw in rows:
            if limit is not None and kept >= limit:
                break
            problem_id = raw.problem_id or f"{raw.source.replace('/', '-')}-{raw.row:06d}"
            if isinstance(raw, BadRow):
                self._reject(raw, problem_id, raw.reason, raw.detail)
                continue
            reason, detail = self._check(raw, problem_id)
            if reason:
                self._reject(raw, problem_id, reason, detail)
                continue
            self._accept(raw, problem_id, split, grader)
            kept += 1
        return kept

    def _reject(self, raw: SourceRow, problem_id: str, reason: str, detail: str | None) -> None:
        self.rejected.append(
            {"source": raw.source, "row": raw.row, "problem_id": problem_id, "reason": reason, "detail": detail}
        )

    def _accept(self, raw: RawRow, problem_id: str, split: str, grader: GraderKind) -> None:
        self._texts[normalize_text(str(raw.problem))] = problem_id
        self._ids.add(problem_id)
        self.accepted.append(
            {
                "problem_id": problem_id,
                "source": raw.source,
                "problem": str(raw.problem).strip(),
                "answer": str(raw.answer).strip(),
                "split": split,
                "grader": grader.value,
                "meta": json.dumps(raw.meta, sort_keys=True, ensure_ascii=False),
            }
        )

    def _check(self, raw: RawRow, problem_id: str) -> tuple[str | None, str | None]:
        text = "" if raw.problem is None else str(raw.problem).strip()
        if not text:
            return "empty_problem", "the problem text is empty"
        if self.max_problem_chars is not None and len(text) > self.max_problem_chars:
            return "too_long", f"{len(text)} characters, over ingest.max_problem_chars={self.max_problem_chars}"
        if raw.answer is None or not str(raw.answer).strip():
            return "missing_answer", "no reference answer, so samples cannot be graded"
        first = self._texts.get(normalize_text(text))
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
