from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bard_core import schemas
from bard_core.config import IngestConfig
from bard_core.grading import GraderKind
from bard_core.problems import (
    BadRow,
    FieldMap,
    ProblemCollector,
    ProblemFileError,
    RawRow,
    bundled,
    bundled_datasets,
    read_problem_file,
)


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _good_rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"r{i}", "problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(n)]


def test_bom_and_crlf_load_like_a_clean_file(tmp_path: Path) -> None:
    clean = _jsonl(tmp_path / "clean.jsonl", _good_rows(3))
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(b"\xef\xbb\xbf" + clean.read_bytes().replace(b"\n", b"\r\n"))
    expected = read_problem_file(clean, FieldMap(), "file")
    assert read_problem_file(windows, FieldMap(), "file") == expected
    assert [(r.row, r.problem_id) for r in expected] == [(1, "r0"), (2, "r1"), (3, "r2")]
    with gzip.open(tmp_path / "windows.jsonl.gz", "wb") as handle:
        handle.write(windows.read_bytes())
    assert read_problem_file(tmp_path / "windows.jsonl.gz", FieldMap(), "file") == expected


def test_bad_lines_are_rejected_with_reason_and_line(tmp_path: Path) -> None:
    rows = _good_rows(18)
    rows.insert(4, {"id": "no-answer", "problem": "What is 9+9?"})
    path = tmp_path / "p.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"id": "cut", "problem": "What is'
    path.write_text(text, encoding="utf-8")
    collector = ProblemCollector()
    kept = collector.add(read_problem_file(path, FieldMap(), "file/p"), "train", GraderKind.MATH, None)
    assert kept == 18 and len(collector.accepted) == 18
    assert collector.reason_counts() == {"invalid_json": 1, "missing_field": 1}
    by_reason = {r["reason"]: r for r in collector.rejected}
    missing = by_reason["missing_field"]
    assert (missing["row"], missing["problem_id"], missing["source"]) == (5, "no-answer", "file/p")
    assert missing["detail"] == "missing field(s) ['answer'] (present: ['id', 'problem'])"
    cut = by_reason["invalid_json"]
    assert (cut["row"], cut["problem_id"]) == (20, "file-p-000020")
    assert cut["detail"].startswith("invalid JSON (Unterminated string")
    pa.Table.from_pylist(collector.rejected, schema=schemas.REJECTIONS)  # the artifact's contract holds


def test_non_object_line_is_rejected_as_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*_good_rows(9), [1, 2]]))
    rows = read_problem_file(path, FieldMap(), "file")
    assert rows[-1] == BadRow("file", 10, "invalid_json", "expected a JSON object per line, got list")


def test_field_absent_from_every_row_is_a_mapping_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"id": str(i), "question": f"q{i}", "answer": "1"} for i in range(5)])
    with pytest.raises(ProblemFileError) as info:
        read_problem_file(path, FieldMap(), "file")
    message = str(info.value)
    assert message.startswith(
        f"{path}: field(s) ['problem'] absent from every row (present: ['answer', 'id', 'question'])"
    )
    assert "set id_field/problem_field/answer_field" in message


def test_too_many_bad_rows_fail_the_file_naming_share_and_key(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _good_rows(8)) + "{not json}\n" + '{"id": "x"}\n')
    with pytest.raises(ProblemFileError) as info:
        read_problem_file(path, FieldMap(), "file")
    message = str(info.value)
    assert f"{path}: 2 of 10 rows are bad (20%, over max_bad_row_share=0.1)" in message
    assert "first at line 9: invalid JSON (Expecting property name" in message
    assert "raise max_bad_row_share on the file source" in message
    rows = read_problem_file(path, FieldMap(), "file", max_bad_row_share=0.2)
    assert [(r.row, r.reason) for r in rows if isinstance(r, BadRow)] == [(9, "invalid_json"), (10, "missing_field")]


def test_every_line_invalid_fails_with_the_first_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("{not json}\n[1]\n")
    with pytest.raises(ProblemFileError, match=r"p\.jsonl: 2 of 2 rows are bad \(100%.*first at line 1: invalid JSON"):
        read_problem_file(path, FieldMap(), "file")


def test_overlong_problem_is_rejected_too_long() -> None:
    limit = IngestConfig().max_problem_chars
    assert limit == 16_000
    rows = [RawRow("s", 1, "long", "x" * (limit + 1), "1"), RawRow("s", 2, "fits", "y" * limit, "1")]
    collector = ProblemCollector(max_problem_chars=limit)
    assert collector.add(rows, "train", GraderKind.MATH, None) == 1
    assert [p["problem_id"] for p in collector.accepted] == ["fits"]
    assert collector.rejected == [
        {"source": "s", "row": 1, "problem_id": "long", "reason": "too_long",
         "detail": "16001 characters, over ingest.max_problem_chars=16000"}
    ]  # fmt: skip
    assert ProblemCollector().add(rows[:1], "train", GraderKind.MATH, None) == 1  # no limit unless configured


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


def test_unsupported_types(tmp_path: Path) -> None:
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
    assert (collector.accepted[0]["grader"], collector.accepted[0]["meta"]) == ("math", "{}")  # a column
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


# Regression tests of the bad-input campaign (bard_pipeline/chaos/bad_input.py): each was a raw traceback.


def test_cut_or_non_gzip_file_is_a_problem_file_error_naming_file_and_line(tmp_path: Path) -> None:
    packed = gzip.compress("".join(json.dumps(r) + "\n" for r in _good_rows(50)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[:-12])  # was EOFError; line 50 is the one cut short
    with pytest.raises(ProblemFileError, match=r"cut\.jsonl\.gz: unreadable after line 49 \(EOFError.*truncated"):
        read_problem_file(tmp_path / "cut.jsonl.gz", FieldMap(), "file")
    _jsonl(tmp_path / "plain.jsonl.gz", _good_rows(3))  # was gzip.BadGzipFile
    with pytest.raises(ProblemFileError, match=r"plain\.jsonl\.gz: unreadable from its start \(BadGzipFile"):
        read_problem_file(tmp_path / "plain.jsonl.gz", FieldMap(), "file")


def test_upper_case_gz_suffix_is_read_as_gzip(tmp_path: Path) -> None:
    (tmp_path / "P.JSONL.GZ").write_bytes(gzip.compress(json.dumps(_good_rows(1)[0]).encode()))
    assert [r.problem_id for r in read_problem_file(tmp_path / "P.JSONL.GZ", FieldMap(), "f")] == ["r0"]


def test_unreadable_parquet_is_a_problem_file_error(tmp_path: Path) -> None:
    (tmp_path / "p.parquet").write_bytes(b"not parquet at all")  # was pyarrow.ArrowInvalid, naming no fix
    with pytest.raises(ProblemFileError, match=r"p\.parquet: not a readable Parquet file \(ArrowInvalid"):
        read_problem_file(tmp_path / "p.parquet", FieldMap(), "file")


def test_lines_past_the_json_parsers_limits_are_counted_rejections(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    huge = '{"id": "big", "problem": "q", "answer": ' + "9" * 5000 + "}"  # was ValueError (int digit limit)
    deep = "[" * 5000 + "]" * 5000  # was RecursionError
    path.write_text("".join(json.dumps(r) + "\n" for r in _good_rows(18)) + huge + "\n" + deep + "\n")
    bad = [r for r in read_problem_file(path, FieldMap(), "file", max_bad_row_share=0.1) if isinstance(r, BadRow)]
    assert [(r.row, r.reason) for r in bad] == [(19, "invalid_json"), (20, "invalid_json")]
    assert bad[0].detail == "invalid JSON (Exceeds the limit (4300 digits) for integer string conversion)"
    assert bad[1].detail == "invalid JSON (nested too deeply to parse)"


def test_lone_surrogate_escape_is_rejected_before_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in _good_rows(9)) + '{"id": "s", "problem": "a\\udc80", "answer": "1"}\n'
    path.write_text(text)
    collector = ProblemCollector()
    assert collector.add(read_problem_file(path, FieldMap(), "file/p"), "train", GraderKind.MATH, None) == 9
    assert collector.rejected == [
        {"source": "file/p", "row": 10, "problem_id": "file-p-000010", "reason": "invalid_json",
         "detail": "invalid JSON (a string holds a lone surrogate escape \\udc80)"}
    ]  # fmt: skip
    pa.Table.from_pylist(collector.accepted, schema=schemas.PROBLEMS)  # was UnicodeEncodeError here, at ingest
    pa.Table.from_pylist(collector.rejected, schema=schemas.REJECTIONS)
