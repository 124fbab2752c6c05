"""The `ingest` stage on a Hugging Face dataset folder: answers cut out of worked solutions, failures recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bard_core.config import HFSourceConfig, IngestConfig, RunConfig
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactStore
from bard_pipeline.tasks.ingest import ingest
from bard_pipeline.tasks.stage import RunRecord, StageContext

GSM8K_STYLE = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "A shop sells 1,000 pens a day for 2 days. How many pens?", "answer": "1000*2 = 2000\n#### 2,000"},
    {"question": "What is the answer to this one?", "answer": "The worked solution lost its final line."},
]  # fmt: skip


def test_an_hf_source_grades_against_the_extracted_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "gsm8k"  # what `datasets` loads by path: a folder of data files, split named by file
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in GSM8K_STYLE))
    source = HFSourceConfig(dataset=str(folder), problem_field="question", answer_extractor="gsm8k")
    cfg = RunConfig(ingest=IngestConfig(sources=(source,)))
    store = ArtifactStore(f"file://{tmp_path}/store")
    run = RunRecord(run_id="r1", name="t", recipe=None, overrides=[], config={})
    ctx = StageContext(cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=frozenset({"ingest"}))

    ref = ingest.fn(ctx)

    problems = store.read_table(ref, "problems").to_pylist()
    assert [p["answer"] for p in problems] == ["72", "2000"]
    assert json.loads(problems[0]["meta"])["answer"].endswith("#### 72")  # the worked solution is kept
    (rejected,) = store.read_table(ref, "rejections").to_pylist()
    assert (rejected["row"], rejected["reason"]) == (3, "answer_extraction_failed")
    assert "gsm8k" in rejected["detail"] and "####" in rejected["detail"]
    manifest = store.manifest(ref)
    assert manifest.stats["rejected"] == {"answer_extraction_failed": 1}
