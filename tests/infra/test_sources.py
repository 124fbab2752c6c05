from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bard_core.config import BundledSourceConfig, FileSourceConfig, HFSourceConfig, ToySourceConfig
from bard_core.grading import GraderKind
from bard_core.problems import ProblemFileError
from bard_pipeline.infra.sources import source_content_hash, source_grader, source_rows


def test_each_source_kind_yields_rows(tmp_path: Path) -> None:
    toy = list(source_rows(ToySourceConfig(size=12, seed=2)))
    assert len(toy) == 12 and source_grader(ToySourceConfig()) is GraderKind.REASONING_GYM
    aime = list(source_rows(BundledSourceConfig(name="aime24")))
    assert len(aime) == 30 and aime[0].problem_id.startswith("aime24-")
    assert source_grader(BundledSourceConfig(name="mmlu_stem")) is GraderKind.CHOICE
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"q": "What is 2+3?", "a": "5"}) + "\n")
    rows = list(source_rows(FileSourceConfig(path=str(path), id_field=None, problem_field="q", answer_field="a")))
    assert (rows[0].problem, rows[0].answer, rows[0].problem_id) == ("What is 2+3?", "5", None)


def test_file_content_is_part_of_the_source_identity(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "problem": "p", "answer": "1"}\n')
    before = source_content_hash(FileSourceConfig(path=str(path)))
    path.write_text('{"id": "a", "problem": "p", "answer": "2"}\n')
    assert source_content_hash(FileSourceConfig(path=str(path))) != before
    with pytest.raises(ProblemFileError, match="file not found"):
        source_content_hash(FileSourceConfig(path=str(tmp_path / "gone.jsonl")))


def test_file_source_reads_windows_files_and_passes_its_bad_row_share(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps({"id": f"p{i}", "problem": f"What is {i}+2?", "answer": str(i + 2)}) for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([*lines, '{"id": "p9"}']).encode() + b"\r\n")
    with pytest.raises(ProblemFileError, match=r"1 of 4 rows are bad \(25%, over max_bad_row_share=0\.1\)"):
        list(source_rows(FileSourceConfig(path=str(path))))
    rows = list(source_rows(FileSourceConfig(path=str(path), max_bad_row_share=0.25)))
    assert [(r.row, r.problem_id, getattr(r, "reason", None)) for r in rows] == [
        (1, "p0", None), (2, "p1", None), (3, "p2", None), (4, "p9", "missing_field")
    ]  # fmt: skip
    assert rows[0].problem == "What is 0+2?"
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        FileSourceConfig(path=str(path), max_bad_row_share=1.5)


def test_hugging_face_source_fails_clearly_when_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ProblemFileError) as info:
        list(source_rows(HFSourceConfig(dataset="openai/gsm8k", subset="main", problem_field="question")))
    assert "openai/gsm8k" in str(info.value) and "kind: file" in str(info.value)
