"""The distillation flow end to end on the smoke recipe: real Prefect API, real Ray, real stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bard_pipeline.infra.store import ArtifactRef
from tests.support.flows import run_flow, statuses

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
DATA_STAGES = ["tokenizer", "model:toy-student", "ingest", "sample", "compress", "materialize"]
DATA = {"until": "materialize"}  # these tests are about the data stages; training has its own


def test_smoke_run_materializes_a_loadable_dataset_then_skips_everything(tmp_path: Path) -> None:
    overrides = [f"store.root=file://{tmp_path}/store"]
    state, record, store = run_flow(overrides, **DATA)
    assert state.is_completed(), state.message
    assert statuses(record) == dict.fromkeys(DATA_STAGES, "executed")
    assert record["status"] == "completed"
    for info in record["stages"].values():
        assert store.verify(ArtifactRef.parse(info["artifact"])) == []
    sample = store.manifest(ArtifactRef.parse(record["stages"]["sample"]["artifact"]))
    cost = record["cost"]  # what the run cost (bard_core.cost), added when it closed
    assert cost["teacher"]["requests"] == sample.usage["calls"] > 0  # HTTP calls to the teacher, retries included
    assert cost["teacher"]["tokens"] == sample.usage["prompt_tokens"] + sample.usage["completion_tokens"]
    assert [s["stage"] for s in cost["stages"]] == DATA_STAGES and not any(s["reused"] for s in cost["stages"])
    assert "**Teacher:**" in _run_cost_markdown(record["run_id"])

    dataset = ArtifactRef.parse(record["stages"]["materialize"]["artifact"])
    manifest = store.manifest(dataset)
    assert manifest.stats["problems"] >= 100
    assert set(manifest.stats["tiers"]) == {"16", "32", "64", "128"}
    assert all(t["valid"] > 0 for t in manifest.stats["tiers"].values())
    export = store.fetch_dir(dataset, tmp_path / "export")
    card = (export / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "\n# BARD dataset card" in card  # Hub metadata, then the card

    import datasets

    loaded = datasets.load_dataset(
        "parquet",
        data_files={"train": str(export / "sft_train.parquet"), "validation": str(export / "sft_validation.parquet")},
    )
    row = loaded["train"][0]
    assert row["prompt"][0]["role"] == "user" and "Thinking budget:" in row["prompt"][0]["content"]
    assert row["completion"][0]["content"].startswith("<think>\n")
    assert loaded["validation"].num_rows > 0
    assert not set(loaded["train"]["problem_id"]) & set(loaded["validation"]["problem_id"])

    again, record2, _ = run_flow(overrides, **DATA)
    assert again.is_completed()
    assert statuses(record2) == dict.fromkeys(DATA_STAGES, "skipped")
    assert {k: v["artifact"] for k, v in record2["stages"].items()} == {
        k: v["artifact"] for k, v in record["stages"].items()
    }
    assert [h["run_id"] for h in store.ref_history("smoke")] == [record["run_id"], record2["run_id"]]
    # Skipped stages count what their artifacts cost (once), flagged as not built by this run.
    assert record2["cost"]["teacher"] == cost["teacher"] and all(s["reused"] for s in record2["cost"]["stages"])


def _run_cost_markdown(flow_run_id: str) -> str:
    """The `run-cost` markdown artifact the flow run published to the Prefect API."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["run-cost"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])),
        )
    assert len(artifacts) == 1
    return str(artifacts[0].data)


def test_failure_in_compress_then_rerun_executes_only_compress_and_materialize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [f"store.root=file://{tmp_path}/store"]
    monkeypatch.setenv("BARD_FAIL_STAGE", "compress")
    state, record, store = run_flow(overrides, **DATA)
    assert state.is_failed()
    assert statuses(record) == {
        "tokenizer": "executed",
        "model:toy-student": "executed",
        "ingest": "executed",
        "sample": "executed",
    }
    assert record["status"] == "failed"
    before = {s: store.manifest(ArtifactRef.parse(record["stages"][s]["artifact"])) for s in ("ingest", "sample")}

    monkeypatch.delenv("BARD_FAIL_STAGE")
    state, record, store = run_flow(overrides, **DATA)
    assert state.is_completed()
    assert statuses(record) == {
        "tokenizer": "skipped",
        "model:toy-student": "skipped",
        "ingest": "skipped",
        "sample": "skipped",
        "compress": "executed",
        "materialize": "executed",
    }
    for stage, manifest in before.items():
        assert store.manifest(ArtifactRef.parse(record["stages"][stage]["artifact"])) == manifest


def test_a_retried_stage_redoes_only_missing_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = [f"store.root=file://{tmp_path}/store", "compress.shard_rows=60"]
    monkeypatch.setenv("BARD_FAIL_STAGE", "compress:after_shards=1")
    state, _, _ = run_flow(overrides, **DATA)
    assert state.is_failed()  # each of the task's two attempts wrote one more shard, then failed

    monkeypatch.delenv("BARD_FAIL_STAGE")
    state, record, store = run_flow(overrides, **DATA)
    assert state.is_completed()
    compress = store.manifest(ArtifactRef.parse(record["stages"]["compress"]["artifact"]))
    assert compress.usage["shards_reused"] == 2
    assert compress.usage["shards"] > 2
    tiers = store.read_table(ArtifactRef.parse(record["stages"]["compress"]["artifact"]), "tiers")
    keys = list(zip(tiers.column("problem_id").to_pylist(), tiers.column("budget_tokens").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == compress.stats["jobs"]  # nothing missing, nothing twice


def test_s3_store_run_produces_verifiable_artifacts(s3_endpoint: str) -> None:
    overrides = ["store.root=s3://bard-test/e2e", f"store.endpoint_url={s3_endpoint}"]
    state, record, store = run_flow(overrides, **DATA)
    assert state.is_completed(), state.message
    assert set(statuses(record).values()) == {"executed"}
    for info in record["stages"].values():
        assert info["uri"].startswith("s3://bard-test/e2e/")
        assert store.verify(ArtifactRef.parse(info["artifact"])) == []
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(record)


def test_stage_selection_requires_existing_inputs(tmp_path: Path) -> None:
    overrides = [f"store.root=file://{tmp_path}/store"]
    state, _, _ = run_flow(overrides, stages=["materialize"], **DATA)
    assert state.is_failed()
    assert "is not in --stages" in str(state.result(raise_on_failure=False))
