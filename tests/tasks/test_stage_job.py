"""A stage as a Ray Job, without a cluster: the spec round trip, the task arguments across the boundary,
the entrypoint's argument handling, and which stages go to the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.recipes import load_config
from bard_pipeline.infra.ray_jobs import RayJobError
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import RunRecord, StageContext, runs_as_job
from bard_pipeline.tasks.stage_job import (
    SPEC_ENV,
    StageArguments,
    StageJobSpec,
    call_arguments,
    job_address,
    job_config,
    main,
    stage_arguments,
)
from tests.support.flows import SMOKE

JOBS = "ray.job_address=http://127.0.0.1:8265"


def _spec(tmp_path: Path) -> StageJobSpec:
    cfg = load_config(SMOKE, [JOBS, "store.root=file://.bard/store"])
    student = ModelLocation("store:model/abc", None, "model/abc")
    arguments = stage_arguments({"dataset": ArtifactRef("materialize", "f00"), "student": student})
    return StageJobSpec(config=job_config(cfg, f"file://{tmp_path}/store"), stage="sft", arguments=arguments,
                        artifact="sft/123", run_id="run-1")  # fmt: skip


def test_the_spec_round_trips_and_runs_in_the_cluster_without_submitting_again(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    again = StageJobSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    ray = again.config.ray
    assert (ray.address, ray.job_address) == ("auto", None)  # joins its cluster, submits no job of its own
    assert again.config.store.root == f"file://{tmp_path}/store"  # resolved by the flow, not the job's cwd
    assert not runs_as_job(ray, "sft")
    # What the stages fingerprint is the same config: the job builds the artifact the flow expects.
    cfg = load_config(SMOKE, [JOBS])
    assert again.config.sft.fingerprint_dump() == cfg.sft.fingerprint_dump()
    assert call_arguments(again.arguments) == {
        "dataset": ArtifactRef("materialize", "f00"),
        "student": ModelLocation("store:model/abc", None, "model/abc"),
    }


def test_task_arguments_cross_typed_and_anything_else_is_refused(tmp_path: Path) -> None:
    cfg = load_config(SMOKE, [JOBS])
    ctx = StageContext(cfg, ArtifactStore(f"file://{tmp_path}"), RaySession(cfg.ray), RunRecord("r", "n", None, [], {}))
    models = {"toy": ModelLocation("HuggingFaceTB/x", "main", "hub:HuggingFaceTB/x@main")}
    # selection=None: sample's optional BRIDGE input left out, so the job calls the task with its default
    arguments = stage_arguments(
        {"ctx": ctx, "problems": ArtifactRef("ingest", "1"), "models": models, "selection": None}
    )
    assert arguments == StageArguments.model_validate_json(arguments.model_dump_json())
    assert call_arguments(arguments) == {"problems": ArtifactRef("ingest", "1"), "models": models}
    with pytest.raises(TypeError, match=r"parameter 'limit' is a int.*extend StageArguments"):
        stage_arguments({"limit": 3})


def test_stages_go_to_the_cluster_only_with_a_job_address() -> None:
    assert not runs_as_job(load_config(SMOKE).ray, "sample")
    ray = load_config(SMOKE, [JOBS]).ray
    stages = ("ingest", "sample", "compress", "materialize", "sft", "rl", "evaluate")
    assert [s for s in stages if runs_as_job(ray, s)] == ["sample", "compress", "sft", "rl", "evaluate"]
    assert not runs_as_job(load_config(SMOKE, [JOBS, "ray.job_stages=[sft]"]).ray, "sample")


def test_an_auto_job_address_is_the_one_the_work_pool_sets() -> None:
    assert job_address("auto", {"RAY_API_SERVER_ADDRESS": "http://ray-head:8265/"}) == "http://ray-head:8265"
    assert job_address("http://h:8265", {}) == "http://h:8265"
    with pytest.raises(RayJobError, match=r"\$RAY_API_SERVER_ADDRESS is not set; set it to the head's dashboard"):
        job_address("auto", {})


def test_the_entrypoint_names_a_missing_or_invalid_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(SPEC_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2 and f"${SPEC_ENV} is not set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--spec", str(tmp_path / "none.json")])
    assert f"no spec file {tmp_path / 'none.json'}" in capsys.readouterr().err
    monkeypatch.setenv(SPEC_ENV, _spec(tmp_path).model_dump_json().replace('"stage":"sft"', '"stage":"ingest"'))
    with pytest.raises(SystemExit):
        main([])
    err = capsys.readouterr().err
    assert f"${SPEC_ENV} is not a stage job spec" in err and "stage 'ingest' cannot run as a Ray job" in err


def test_what_a_job_could_not_publish_is_published_by_the_flow(prefect_api: None, tmp_path: Path) -> None:
    # A Ray Job has no flow run, so its Prefect artifacts (probe table, evaluation metrics) are rebuilt on the
    # flow side from the committed manifest.
    from prefect import flow
    from prefect.artifacts import Artifact

    from bard_core.manifest import Manifest
    from bard_pipeline.tasks import evaluate, training

    cfg = load_config(SMOKE, [JOBS])
    ctx = StageContext(cfg, ArtifactStore(f"file://{tmp_path}"), RaySession(cfg.ray), RunRecord("r", "n", None, [], {}))
    row = {"accuracy": 0.5, "mean_tokens": 20.0, "mean_relative_deviation": 0.2, "within_tolerance": 0.7,
           "over_budget": 0.1}  # fmt: skip
    probe = {"sft": {"per_budget": {"32": row}, "overall": {"spearman_budget_length": 0.9}}}
    metric = {"model": "sft", "benchmark": "toy", "mode": "budget", "budget_tokens": 32, "accuracy": 0.625}
    trained = Manifest(stage="sft", fingerprint="a1", created_at="now", files=(), stats={"probe": probe})
    evaluated = Manifest(stage="evaluate", fingerprint="b2", created_at="now", files=(),
                         stats={"metrics": [metric], "report": "file:///store/evaluate/b2/report.html"})  # fmt: skip

    @flow
    def after_jobs() -> None:
        training.publish_job_result(ctx, ArtifactRef("sft", "a1"), trained)
        evaluate.publish_job_result(ctx, ArtifactRef("evaluate", "b2"), evaluated)

    after_jobs()
    probe_table = Artifact.get("sft-probe")
    assert probe_table is not None and "| sft | 32 | 0.50 | 20.0 |" in str(probe_table.data)
    metrics = Artifact.get("evaluate-metrics")
    assert metrics is not None and "0.625" in str(metrics.data)
    report = Artifact.get("evaluate-report")
    assert report is not None and "evaluate/b2/report.html" in str(report.data)
