"""One full smoke run (every stage, SFT to evaluation) shared by the flow tests that only read its results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bard_pipeline.infra.store import ArtifactStore
from tests.support.flows import run_flow
from tests.support.hub import TOKEN, RecordingHfApi


@dataclass(frozen=True)
class SmokeRun:
    state: Any
    record: dict[str, Any]
    store: ArtifactStore
    root: Path


@pytest.fixture(scope="session")
def smoke_run(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The smoke recipe end to end, evaluated on its held-out toy problems and on a small multiple-choice
    file with one answerless row (which must be counted and skipped)."""
    root = tmp_path_factory.mktemp("smoke-run")
    mc = root / "mini_mc.jsonl"
    rows = [
        {"id": "q1", "problem": "Which is even? (A) 3 (B) 4 (C) 5 (D) 7", "answer": "B"},
        {"id": "q2", "problem": "Which is prime? (A) 4 (B) 6 (C) 7 (D) 8", "answer": "C"},
        {"id": "q3", "problem": "A question whose answer was lost. (A) 1 (B) 2", "answer": ""},
    ]
    mc.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    benchmarks = (
        "[{kind: ingested, split: test, name: toy-heldout, limit: 8}, "
        f"{{kind: file, name: mini-mc, path: '{mc}', grader: choice}}]"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BARD_CACHE_DIR", str(root / "cache"))
        # The "no native bf16" path (an AVX2-only CPU), whatever CPU runs the tests: training and the
        # transformers engine must then run in fp32 (the kill-and-resume test runs on the detected hardware).
        env.setenv("BARD_NATIVE_BF16", "0")
        state, record, store = run_flow([f"store.root=file://{root}/store", f"evaluate.benchmarks={benchmarks}"])
    return SmokeRun(state, record, store, root)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """HfApi replaced by the recorder, with a token in the environment; the calls made, in order."""
    import huggingface_hub

    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return RecordingHfApi.calls
