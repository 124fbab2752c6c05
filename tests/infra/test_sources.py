from __future__ import annotations

import json
from pathlib import Path

import pytest

from bard_core.config import BundledSourceConfig, FileSourceConfig, HFSourceConfig, ToySourceConfig
from bard_core.grading import GraderKind
from bard_core.problems import ProblemFileError
from infra.sources import source_content_hash, source_grader, source_rows


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


def test_hugging_face_source_fails_clearly_when_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ProblemFileError) as info:
        list(source_rows(HFSourceConfig(dataset="openai/gsm8k", subset="main", problem_field="question")))
    assert "openai/gsm8k" in str(info.value) and "kind: file" in str(info.value)
