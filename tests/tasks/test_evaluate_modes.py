"""The `evaluate` stage with effort modes, without engines: its requests, its fingerprinted prompt files,
and the modes table and report section it writes from generations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bard_core import schemas
from bard_core.config import RunConfig
from bard_core.report import render_markdown
from bard_core.schemas import EvalMode
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactStore
from bard_pipeline.tasks.evaluate import _mode_rows, _requests, prompt_files
from bard_pipeline.tasks.stage import RunRecord, StageContext

MODES = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}
PROBLEMS = [{"problem_id": f"p{i}", "problem": f"What is {i}+1?", "answer": str(i + 1), "grader": "math",
             "meta": "{}"} for i in range(4)]  # fmt: skip


def _ctx(tmp_path: Path, budget: dict[str, Any]) -> StageContext:
    cfg = RunConfig.model_validate({"budget": budget, "evaluate": {"models": ["sft"], "truncation": None}})
    run = RunRecord(run_id="r1", name="t", recipe=None, overrides=[], config={})
    store = ArtifactStore(f"file://{tmp_path}/store")
    return StageContext(cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=frozenset({"evaluate"}))


def test_modes_add_effort_requests_and_the_effort_prompt_to_the_fingerprint(tmp_path: Path) -> None:
    plain = _ctx(tmp_path, {"tiers_tokens": [16, 32]})
    moded = _ctx(tmp_path, {"tiers_tokens": [16, 32], "modes": MODES})
    before = _requests(plain.cfg.evaluate, plain, "b", PROBLEMS, (16, 32))["sft"]
    after = _requests(moded.cfg.evaluate, moded, "b", PROBLEMS, (16, 32))["sft"]
    assert [r for r in after if r["mode"] == EvalMode.BUDGET] == before
    effort = [r for r in after if r["mode"] == EvalMode.EFFORT]
    assert len(effort) == 2 * len(PROBLEMS) and effort[0]["prompt"][0]["content"].endswith("Reasoning effort: low.")
    assert pa.Table.from_pylist(after, schema=schemas.EVAL_REQUESTS).column("effort").null_count == len(before)
    assert prompt_files(plain) == ("budget_user.txt", "plain_user.txt")  # no modes: the fingerprint as before
    assert prompt_files(moded) == ("budget_user.txt", "plain_user.txt", "effort_user.txt")


def test_the_modes_table_comes_from_the_generations_and_reaches_the_report(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"tiers_tokens": [16, 32], "modes": MODES})
    requests = _requests(ctx.cfg.evaluate, ctx, "b", PROBLEMS, (16, 32))["sft"]
    length = {"low": 10, "high": 40}
    rows = [
        {"model": "sft", "benchmark": "b", "problem_id": r["problem_id"], "mode": r["mode"],
         "budget_tokens": r["budget_tokens"], "sample_idx": 0, "text": "", "completion_tokens": 1,
         "reasoning_tokens": length.get(r.get("effort") or "", r["budget_tokens"]), "finish_reason": "stop",
         "closed": True, "unparsed": False, "pred_answer": "1", "correct": True, "error": None,
         "effort": r.get("effort")}
        for r in requests
    ]  # fmt: skip
    generations = pa.Table.from_pylist(rows, schema=schemas.GENERATIONS)
    modes = _mode_rows(ctx, ctx.cfg.evaluate, generations, requests)
    assert [m["effort"] for m in modes] == ["low", "medium", "high"]
    assert [m["token_reduction"] for m in modes] == pytest.approx([0.75, 0.2, 0.0])  # 10, 32 and 40 tokens against 40
    assert pa.Table.from_pylist(modes, schema=schemas.MODES).num_rows == 3
    assert "## Effort modes" in render_markdown("t", [], {}, modes)
    plain = _ctx(tmp_path, {"tiers_tokens": [16, 32]})
    assert _mode_rows(plain, plain.cfg.evaluate, generations, requests) == []
