"""The `materialize` stage's dataset artifact, exported with the CLI, loads with `datasets` by its card."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from bard_core import schemas
from bard_core.config import RunConfig
from bard_pipeline.flows.cli import app
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.materialize import materialize
from bard_pipeline.tasks.stage import RunRecord, StageContext, StageResult, StageSpec, execute

PROBLEMS = 30


def _input(ctx: StageContext, stage: str, table: str, schema: pa.Schema, rows: list[dict[str, object]]) -> ArtifactRef:
    def build(writer: ArtifactWriter) -> StageResult:
        writer.write_table(table, pa.Table.from_pylist(rows, schema=schema))
        return StageResult()

    return execute(ctx, StageSpec(stage, 1, {"test": table}), build)


def _materialize(tmp_path: Path, cfg: RunConfig) -> tuple[ArtifactStore, ArtifactRef]:
    store = ArtifactStore(f"file://{tmp_path}/store")
    run = RunRecord(run_id="r1", name="t", recipe=None, overrides=[], config={})
    stages = frozenset({"ingest", "sample", "compress", "materialize"})
    ctx = StageContext(cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=stages)
    ids = [f"p{i}" for i in range(PROBLEMS)]
    problems = [{"problem_id": p, "source": "t", "problem": f"What is {i}+1?", "answer": str(i + 1), "split": "train",
                 "grader": "math", "meta": "{}"} for i, p in enumerate(ids)]  # fmt: skip
    traces = [{"problem_id": p, "sample_idx": 0, "teacher": "t", "author": "teacher", "reasoning": "long " * 40,
               "final": "\\boxed{1}", "pred_answer": "1", "correct": True, "reasoning_tokens": 40,
               "finish_reason": "stop", "gen_tokens": 45, "is_gold": True, "error": None} for p in ids]  # fmt: skip
    tiers = [{"problem_id": p, "budget_tokens": 16, "source_tokens": 40, "reasoning": "a b", "final": "\\boxed{1}",
              "reasoning_tokens": 14, "answer_kept": True, "valid": True, "attempts": 1, "reject_reason": None,
              "compressor": "t"} for p in ids]  # fmt: skip
    ref = materialize.fn(
        ctx,
        _input(ctx, "compress", "tiers", schemas.TIERS, tiers),
        _input(ctx, "sample", "traces", schemas.TRACES, traces),
        _input(ctx, "ingest", "problems", schemas.PROBLEMS, problems),
    )
    return store, ref


def test_an_exported_dataset_loads_with_its_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = RunConfig.model_validate({"budget": {"tiers_tokens": [16, 32]}, "materialize": {"val_fraction": 0.3}})
    store, ref = _materialize(tmp_path, cfg)
    folder = tmp_path / "export"
    result = CliRunner().invoke(app, ["artifacts", "export", ref.key, str(folder), "--store", store.root])
    assert result.exit_code == 0, result.output
    assert (folder / "README.md").read_text().startswith("---\nconfigs:\n")

    sft = datasets.load_dataset(str(folder))  # the card's default config: the SFT records
    rl = datasets.load_dataset(str(folder), "rl")
    stats = json.loads((folder / "stats.json").read_text())
    assert set(sft) == set(rl) == {"train", "validation"}
    assert sft.num_rows == {split: sum(kinds.values()) for split, kinds in stats["sft_records"].items()}
    assert {"prompt", "completion", "budget_tokens"} <= set(sft["train"].column_names)
    assert "answer" in rl["train"].column_names and "completion" not in rl["train"].column_names
    assert sum(rl.num_rows.values()) == sum(stats["rl_prompts"].values())


def test_share_modes_add_mode_records_to_the_dataset(tmp_path: Path) -> None:
    modes = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}
    cfg = RunConfig.model_validate({"budget": {"tiers_tokens": [16, 32], "modes": modes}})
    store, ref = _materialize(tmp_path, cfg)
    manifest = store.manifest(ref)
    sft = pa.concat_tables(store.read_table(ref, f"sft_{s}") for s in ("train", "validation")).to_pylist()
    mode_rows = [r for r in sft if r["kind"] == "mode"]
    assert sorted({r["mode"] for r in mode_rows}) == ["high", "low"] and len(mode_rows) == 2 * PROBLEMS
    assert {r["budget_tokens"] for r in mode_rows if r["mode"] == "low"} == {10}  # round(0.25 * 40)
    assert manifest.stats["modes"]["low"]["mean_reasoning_tokens"] == 14.0  # the tier-16 trace is nearest
