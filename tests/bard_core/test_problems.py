from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bard_core.grading import GraderKind
from bard_core.problems import (
    FieldMap,
    ProblemCollector,
    ProblemFileError,
    bundled,
    bundled_datasets,
    read_problem_file,
)


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_missing_field_names_file_line_and_fix(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "1+1", "answer": "2"}, {"id": "b", "problem": "2+2"}])
    with pytest.raises(ProblemFileError) as info:
        list(read_problem_file(path, FieldMap(), "file"))
    assert f"{path}:2: missing field(s) ['answer']" in str(info.value)
    assert "answer_field" in str(info.value)


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a", "problem": "ok", "answer": "1"}\n{"id": "b", "problem": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(ProblemFileError, match=r"p\.jsonl:2: not valid UTF-8.*re-encode"):
        list(read_problem_file(path, FieldMap(), "file"))


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(ProblemFileError, match=r"empty\.jsonl: file is empty"):
        list(read_problem_file(path, FieldMap(), "file"))


def test_invalid_json_and_unsupported_types(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n{not json}\n')
    with pytest.raises(ProblemFileError, match=r"p\.jsonl:2: invalid JSON"):
        list(read_problem_file(path, FieldMap(id_field=None, problem_field="id", answer_field="id"), "file"))
    with pytest.raises(ProblemFileError, match="unsupported file type"):
        list(read_problem_file(tmp_path / "p.csv", FieldMap(), "file"))


def test_parquet_and_gzip_sources_with_field_mapping(tmp_path: Path) -> None:
    pq.write_table(pa.table({"question": ["What is 3+4?"], "solution": ["7"]}), tmp_path / "p.parquet")
    rows = list(read_problem_file(tmp_path / "p.parquet", FieldMap(None, "question", "solution"), "file"))
    assert (rows[0].problem, rows[0].answer, rows[0].row) == ("What is 3+4?", "7", 1)
    with gzip.open(tmp_path / "p.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"id": "x", "problem": "p", "answer": "a"}) + "\n")
    assert [r.problem_id for r in read_problem_file(tmp_path / "p.jsonl.gz", FieldMap(), "f")] == ["x"]
    with pytest.raises(ProblemFileError, match=r"missing column\(s\) \['id', 'problem', 'answer'\]"):
        list(read_problem_file(tmp_path / "p.parquet", FieldMap(), "file"))


def test_bad_rows_are_rejected_counted_and_explained(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "problem": "What is 1+1?", "answer": "2"},
            {"id": "b", "problem": "  what IS 1+1? ", "answer": "2"},  # duplicate after normalisation
            {"id": "c", "problem": "   ", "answer": "1"},
            {"id": "d", "problem": "What is 2+2?", "answer": None},
            {"id": "e", "problem": "What is 3+3?", "answer": ""},
            {"id": "a", "problem": "What is 5+5?", "answer": "10"},
            {"id": "f", "problem": "What is 6+6?", "answer": 12},
        ],
    )
    collector = ProblemCollector()
    kept = collector.add(read_problem_file(path, FieldMap(), "file/p"), "train", GraderKind.MATH, None)
    assert kept == 2
    assert [p["problem_id"] for p in collector.accepted] == ["a", "f"]
    assert collector.accepted[1]["answer"] == "12"
    assert collector.reason_counts() == {"duplicate": 1, "duplicate_id": 1, "empty_problem": 1, "missing_answer": 2}
    dup = next(r for r in collector.rejected if r["reason"] == "duplicate")
    assert (dup["row"], dup["detail"]) == (2, "same problem text as a")


def test_bundled_datasets_ship_with_the_package() -> None:
    available = bundled_datasets()
    assert {"aime24", "aime25", "math500", "gsm8k_test", "amc23", "gsm8k_train", "math_train"} <= set(available)
    assert bundled("mmlu_stem").grader is GraderKind.CHOICE
    collector = ProblemCollector()
    assert (
        collector.add(read_problem_file(bundled("math500").path, FieldMap(), "b"), "test", GraderKind.MATH, None) == 500
    )
    assert (
        collector.add(read_problem_file(bundled("gsm8k_train").path, FieldMap(), "b"), "train", GraderKind.MATH, 50)
        == 50
    )
    with pytest.raises(ProblemFileError, match="available: aime24"):
        bundled("gpqa")
