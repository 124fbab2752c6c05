"""Stages as Ray Jobs on a real two-node Ray cluster on 127.0.0.1 (`ray start --head` + `ray start --address`):
the smoke flow's sample, compress and SFT stages submitted through the job submission API, a failing job's
error, and a job stopped when the wait ends."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bard_pipeline.chaos.cluster import NodeTarget, lost_node
from bard_pipeline.infra import ray_jobs
from tests.conftest import REPO, SmokeRun
from tests.support.chaos import clean_run
from tests.support.flows import artifact, run_flow, statuses
from tests.support.ray_cluster import RayCluster, two_node_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # the cluster runs without token auth; so does the client
        with two_node_cluster(tmp_path_factory.mktemp("ray-cluster")) as running:
            yield running


def _request(cluster: RayCluster, name: str, entrypoint: str, timeout_s: float = 120) -> ray_jobs.JobRequest:
    return ray_jobs.JobRequest(cluster.dashboard, f"bard-test-{name}", entrypoint, "SPEC", "{}",
                               env_vars={"BARD_TEST": "1"}, timeout_s=timeout_s)  # fmt: skip


def test_a_failed_job_names_its_id_status_message_and_last_lines(cluster: RayCluster) -> None:
    script = "import os, sys; print('read', os.environ['SPEC'], os.environ['BARD_TEST']); sys.exit(3)"
    relayed: list[str] = []
    with pytest.raises(ray_jobs.RayJobError) as failure:
        ray_jobs.run_job(_request(cluster, "fails", f'python -c "{script}"'), relayed.append, poll_s=0.3)
    message = str(failure.value)
    assert "Ray job bard-test-fails FAILED" in message and "exit code 3" in message
    assert "read {} 1" in message  # the last log lines: the spec and the environment reached the job
    assert "read {} 1" in relayed  # ... and were relayed while it ran


def test_a_job_outliving_its_timeout_is_stopped(cluster: RayCluster) -> None:
    from ray.job_submission import JobSubmissionClient

    with pytest.raises(ray_jobs.RayJobError, match=r"still (PENDING|RUNNING) after 2 s .*it was stopped"):
        ray_jobs.run_job(_request(cluster, "sleeps", 'python -c "import time; time.sleep(600)"', 2), print, 0.3)
    client = JobSubmissionClient(cluster.dashboard)
    deadline = time.monotonic() + 30
    while client.get_job_status("bard-test-sleeps").value != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.get_job_status("bard-test-sleeps").value == "STOPPED"


def _where(cluster: RayCluster, job_id: str) -> dict[str, Any]:
    """What one job ran where: actor classes and task names per node (head / worker)."""
    from ray.util.state import list_actors, list_tasks

    names = {cluster.head_node_id: "head", cluster.worker_node_id: "worker"}

    def node(node_id: str | None) -> str:
        return names.get(node_id or "", str(node_id))

    actors = list_actors(address=cluster.dashboard, filters=[("job_id", "=", job_id)], limit=1000, detail=True)
    tasks = list_tasks(address=cluster.dashboard, filters=[("job_id", "=", job_id)], limit=1000, detail=True)
    return {
        "actors": sorted(Counter((str(a.class_name), node(a.node_id)) for a in actors if a.node_id).items()),
        "tasks": sorted(Counter((str(t.name), node(t.node_id)) for t in tasks if t.node_id).items()),
    }


def test_the_smoke_stages_run_as_ray_jobs_on_a_two_node_cluster(
    prefect_api: None, cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("BARD_CACHE_DIR", str(tmp_path / "cache"))
    # The first sample job fails (a test fault switch the job inherits): the Prefect retry submits a second.
    (tmp_path / "fail").write_text("sample 1", encoding="utf-8")
    monkeypatch.setenv("BARD_FAIL_STAGE_FILE", str(tmp_path / "fail"))
    overrides = [
        f"store.root=file://{tmp_path}/store",
        f"ray.job_address={cluster.dashboard}",
        "sft.resources.cpus_per_worker=1",  # one CPU per node
        "sft.trl.max_steps=6",  # what is tested is where the steps run, not how many
        "sft.probe.problems=0",
    ]
    state, record, store = run_flow(overrides, until="sft")
    assert state.is_completed(), state.message
    assert statuses(record) == {"tokenizer": "executed", "model:toy-student": "executed", "ingest": "executed",
                                "sample": "executed", "compress": "executed", "materialize": "executed",
                                "sft": "executed"}  # fmt: skip
    jobs = {j.submission_id: j for j in JobSubmissionClient(cluster.dashboard).list_jobs()
            if (j.metadata or {}).get("bard_run_id") == record["run_id"]}  # fmt: skip
    by_stage = Counter((j.metadata["bard_stage"], j.status.value) for j in jobs.values())
    assert by_stage == {("sample", "FAILED"): 1, ("sample", "SUCCEEDED"): 1, ("compress", "SUCCEEDED"): 1,
                        ("sft", "SUCCEEDED"): 1}  # fmt: skip
    failed = next(j for j in jobs.values() if j.status.value == "FAILED")
    assert "InjectedFailureError" in JobSubmissionClient(cluster.dashboard).get_job_logs(failed.submission_id)
    report: dict[str, Any] = {}
    for stage in ("sample", "compress", "sft"):
        entry = record["stages"][stage]
        job = jobs[entry["ray_job"]["submission_id"]]
        assert job.metadata["bard_artifact"] == entry["artifact"] and not store.verify(artifact(record, stage))
        assert job.driver_node_id == cluster.head_node_id  # Ray places a job's driver on the head
        logs = JobSubmissionClient(cluster.dashboard).get_job_logs(job.submission_id)
        code = logs.split("code from ", 1)[1].splitlines()[0]
        assert not code.startswith(str(REPO)), code  # the code travelled in the job's runtime env
        report[stage] = {**entry["ray_job"], "wall_s": entry["wall_s"], **_where(cluster, job.job_id)}
    print("ray-job run of the smoke stages:", json.dumps(report, indent=1))
    sampling = {node for (name, node), _ in report["sample"]["actors"] if "MapWorker" in name}
    training = {node for (name, node), _ in report["sft"]["actors"] if "RayTrainWorker" in name}
    assert sampling and training and (sampling | training) <= {"head", "worker"}
    nodes = {node for stage in report.values() for kind in ("actors", "tasks") for (_, node), _ in stage[kind]}
    assert nodes == {"head", "worker"}  # the work spread over both nodes


def test_a_worker_node_lost_mid_sft_loses_no_rows(cluster: RayCluster, smoke_run: SmokeRun, tmp_path: Path) -> None:
    """The flow joined to the cluster (`ray.address`); the second node SIGKILLed while the SFT worker runs there,
    after a checkpoint. Last in this module: the cluster has one node afterwards."""
    target = NodeTarget(cluster.gcs_address, cluster.kill_worker_node, cluster.actors_on_worker)
    result = lost_node(clean_run(smoke_run, "sft"), "sft", tmp_path, target, random.Random(2), "checkpoint")
    print("lost node:", result)
    assert result.survived, result.detail
    assert (result.rows_lost, result.rows_duplicated) == (0, 0)
