"""The shared stage machinery, driven directly (outside a flow run) against a real local store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from bard_core.config import RunConfig
from bard_core.recipes import load_config
from bard_pipeline.infra.faults import InjectedFailureError, maybe_fail
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.compress import compress_spec
from bard_pipeline.tasks.engine_stage import engine_setup
from bard_pipeline.tasks.sample import sample_spec
from bard_pipeline.tasks.stage import (
    RunRecord,
    StageContext,
    StageNotSelectedError,
    StageResult,
    StageSpec,
    execute,
    stage_config,
)


def _ctx(tmp_path: Path, selected: frozenset[str] = frozenset({"ingest"})) -> StageContext:
    cfg = RunConfig()
    store = ArtifactStore(f"file://{tmp_path}/store")
    run = RunRecord(run_id="r1", name="t", recipe=None, overrides=[], config={})
    return StageContext(cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=selected)


def test_execute_builds_once_then_skips_and_records(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    calls = []

    def build(writer: ArtifactWriter) -> StageResult:
        calls.append(1)
        writer.write_table("problems", pa.table({"x": [1]}))
        return StageResult(stats={"n": 1})

    spec = StageSpec("ingest", 1, {"a": 1})
    first = execute(ctx, spec, build)
    second = execute(ctx, spec, build)
    assert first == second and len(calls) == 1
    assert ctx.store.read_run("r1")["stages"]["ingest"]["status"] == "skipped"
    assert ctx.store.manifest(first).stats == {"n": 1}
    assert execute(ctx, StageSpec("ingest", 1, {"a": 2}), build) != first and len(calls) == 2


def test_prompt_content_and_inputs_change_the_address(tmp_path: Path) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("{problem} v1")
    inputs = {"problems": ArtifactRef("ingest", "a" * 20)}
    before = StageSpec("sample", 1, {}, (str(prompt),), inputs).ref()
    from bard_core.prompting import load_prompt

    load_prompt.cache_clear()
    prompt.write_text("{problem} v2")
    assert StageSpec("sample", 1, {}, (str(prompt),), inputs).ref() != before
    assert StageSpec("sample", 1, {}, (str(prompt),), {"problems": ArtifactRef("ingest", "b" * 20)}).ref() != before


def test_unselected_stage_without_artifact_fails_with_the_fix(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, selected=frozenset({"materialize"}))
    with pytest.raises(StageNotSelectedError, match="add ingest to --stages, or pass --from-run"):
        execute(ctx, StageSpec("ingest", 1, {}), lambda w: StageResult())


def test_fault_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    maybe_fail("compress", None)  # unset: nothing happens
    monkeypatch.setenv("BARD_FAIL_STAGE", "compress")
    with pytest.raises(InjectedFailureError):
        maybe_fail("compress", None)
    maybe_fail("sample", None)
    monkeypatch.setenv("BARD_FAIL_STAGE", "compress:after_shards=2")
    maybe_fail("compress", None)
    maybe_fail("compress", 1)
    with pytest.raises(InjectedFailureError):
        maybe_fail("compress", 2)


def _data_stage_refs(overrides: list[str]) -> tuple[ArtifactRef, ArtifactRef]:
    """The sample and compress addresses of the default config with ``overrides``, on fixed inputs."""
    cfg = load_config(None, overrides)
    problems, tokenizer = ArtifactRef("ingest", "a" * 20), ArtifactRef("tokenizer", "b" * 20)
    traces = ArtifactRef("sample", "c" * 20)
    setup = engine_setup(cfg.sample.engine, cfg.sample.resources, tokenizer, {})
    sample = sample_spec(cfg, setup, problems, tokenizer, None)
    setup = engine_setup(cfg.compress.engine, cfg.compress.resources, tokenizer, {})
    return sample.ref(), compress_spec(cfg, setup, traces, problems, tokenizer).ref()


@pytest.mark.parametrize(
    "override",
    ["sample.shard_rows=7", "compress.shard_rows=7", "sample.resources.replicas=3", "compress.resources.batch_size=5"],
)
def test_execution_only_fields_leave_data_stage_addresses_alone(override: str) -> None:
    assert _data_stage_refs([override]) == _data_stage_refs([])


def test_real_fields_change_data_stage_addresses() -> None:
    sample, compress = _data_stage_refs([])
    assert _data_stage_refs(["sample.n_samples=5"])[0] != sample
    assert _data_stage_refs(["compress.max_attempts=5"])[1] != compress
    assert _data_stage_refs(["budget.tolerance=0.3"])[1] != compress  # a section among the extras counts too


def test_stage_config_of_training_and_evaluate_drops_execution_only_fields() -> None:
    base = RunConfig()
    changed = load_config(
        None,
        [
            "sft.resources.workers=2",
            "rl.resources.cpus_per_worker=1",
            "evaluate.shard_rows=9",
            "evaluate.enabled=false",
            "evaluate.resources.replicas=2",
        ],
    )
    for name in ("sft", "rl", "evaluate"):
        assert stage_config(getattr(changed, name)) == stage_config(getattr(base, name)), name
    assert stage_config(load_config(None, ["sft.seed=3"]).sft) != stage_config(base.sft)


def test_a_section_in_a_spec_enters_without_execution_fields() -> None:
    cfg = RunConfig()
    spec = StageSpec("sample", 1, {"section": cfg.sample, "budget": [cfg.budget]})
    assert "resources" not in spec.config["section"] and spec.config["budget"] == [cfg.budget.fingerprint_dump()]
