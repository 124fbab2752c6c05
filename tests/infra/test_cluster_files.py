"""Cluster files: the KubeRay RayCluster and RayJob and the Prefect kubernetes job template render with a
cluster's parameters and validate; the bucket script configures a real S3 API (moto) as production needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ARGS = ["--image", "$REGISTRY/bard-gpu-worker:0.1.0",
        "--flow-runner-image", "$REGISTRY/bard-flow-runner:0.1.0",
        "--gpu-type", "NVIDIA-H100-80GB-HBM3", "--gpus-per-worker", "8", "--max-gpu-workers", "4",
        "--s3-endpoint", "https://s3.example.internal"]  # fmt: skip


def _render(tmp_path: Path, *extra: str) -> dict[str, Path]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", REPO / "bard_pipeline/infra/k8s/render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {p.name: p for p in module.main([*ARGS, *extra, "--out", str(tmp_path)])}


def test_raycluster_renders_with_gpu_workers_that_autoscale(tmp_path: Path) -> None:
    cluster = yaml.safe_load(_render(tmp_path)["raycluster.rendered.yaml"].read_text())
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    (group,) = cluster["spec"]["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 4)
    pod = group["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith("bard-gpu-worker:0.1.0")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8" == group["rayStartParams"]["num-gpus"]
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "https://s3.example.internal"
    assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]  # credentials from a secret only
    assert cluster["spec"]["rayVersion"] == "2.60.0"  # the Ray of constraints.txt
    (head,) = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert head["image"].endswith("bard-flow-runner:0.1.0")  # job drivers import Prefect, which the GPU image lacks


def test_the_prefect_job_template_is_a_valid_kubernetes_job(tmp_path: Path) -> None:
    import kubernetes_validate

    template = json.loads(_render(tmp_path)["prefect-base-job-template.rendered.json"].read_text())
    assert set(template) == {"variables", "job_configuration"}
    manifest = template["job_configuration"]["job_manifest"]
    # Prefect fills the {{ placeholders }} per flow run; validate with values in their place.
    text = json.dumps(manifest).replace('"{{ command }}"', '["prefect", "flow-run", "execute"]')
    concrete = json.loads(text.replace("{{ namespace }}", "bard").replace("{{ image }}", "img:1"))
    concrete = json.loads(json.dumps(concrete).replace("{{ ray_job_address }}", "http://bard-head-svc:8265"))
    kubernetes_validate.validate(concrete, "1.33", strict=True)
    assert template["variables"]["properties"]["image"]["default"].endswith("bard-flow-runner:0.1.0")
    # Stages reach the cluster as Ray Jobs through the head service's dashboard port, not Ray Client.
    assert template["variables"]["properties"]["ray_job_address"]["default"] == "http://bard-head-svc:8265"
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RAY_API_SERVER_ADDRESS"] == "{{ ray_job_address }}" and "RAY_ADDRESS" not in env


def test_the_rayjob_runs_a_flow_with_its_driver_in_the_raycluster(tmp_path: Path) -> None:
    rendered = _render(tmp_path, "--recipe", "toy", "--store-root", "s3://bard-artifacts/toy")
    job = yaml.safe_load(rendered["rayjob.rendered.yaml"].read_text())
    cluster = yaml.safe_load(rendered["raycluster.rendered.yaml"].read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job["spec"]["entrypoint"] == "bard run toy ray.address=auto store.root=s3://bard-artifacts/toy"
    (submitter,) = job["spec"]["submitterPodTemplate"]["spec"]["containers"]
    assert submitter["image"].endswith("bard-flow-runner:0.1.0")  # it has the `ray` CLI (ray[default])
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"


def test_bad_cluster_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="exceeds --max-gpu-workers"):
        _render(tmp_path, "--min-gpu-workers", "5")
    with pytest.raises(SystemExit, match="DNS label"):
        _render(tmp_path, "--cluster-name", "Bard_Cluster")


def test_the_bucket_script_enables_versioning_and_scratch_expiry(s3_endpoint: str) -> None:
    import boto3

    from bard_pipeline.infra.s3.configure_bucket import main

    first = main(["--bucket", "bard-artifacts-test", "--endpoint-url", s3_endpoint])
    again = main(["--bucket", "bard-artifacts-test", "--endpoint-url", s3_endpoint])  # idempotent
    assert first["created"] is True and again["created"] is False and again["versioning"] == "Enabled"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    rules = s3.get_bucket_lifecycle_configuration(Bucket="bard-artifacts-test")["Rules"]
    scratch = next(r for r in rules if r["ID"] == "expire-training-scratch")
    assert scratch["Filter"]["Prefix"] == "_scratch/" and scratch["Expiration"]["Days"] == 7
