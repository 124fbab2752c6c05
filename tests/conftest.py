"""Test session setup: isolated Prefect home, telemetry off, helpers for stores and S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Before anything imports Prefect: an isolated home so tests never touch the user's Prefect database.
_PREFECT_HOME = tempfile.mkdtemp(prefix="bard-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("BARD_FAIL_STAGE", None)  # a fault switch left in the shell must not leak in

from bard_pipeline.infra.env import apply_defaults  # noqa: E402

if TYPE_CHECKING:
    from bard_pipeline.infra.store import ArtifactStore

apply_defaults()

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1, with a bucket; credentials set in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing-secret", AWS_DEFAULT_REGION="us-east-1"
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bard-test")
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API server for the whole session (flows run against it)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): one worker per CPU, at most four — each worker runs whole pipelines
    (a Prefect API, Ray runtimes, training, vLLM servers), a few GiB and several processes apiece. The CPUs
    this process may use, not the host's: a container's cpuset is what it has. ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still decides where it is set (xdist's own hook reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with `slow` tests first, so that xdist hands out the long files while the short ones are left
    to even out the workers' finish; tests marked `gpu` run only where CUDA is available (a bare `pytest`
    stays CPU-only)."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)  # stable: a module's tests stay together
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Llama over a toy BPE tokenizer, saved as a transformers folder."""
    from bard_core.config import ToyRandomModelSpec
    from bard_core.prompting import load_prompt
    from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer
    from bard_pipeline.infra.models import build_toy_random

    root = tmp_path_factory.mktemp("toy-model")
    tokenizer = train_toy_tokenizer(toy_corpus(40, 7, [16, 32, 64], load_prompt("budget_user.txt")), 512)
    tokenizer.save_pretrained(root / "tokenizer")
    spec = ToyRandomModelSpec(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=256
    )
    build_toy_random(spec, root / "tokenizer", root / "model")
    return root / "model"


VLLM_PYTHON = Path(os.environ.get("BARD_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The separate vLLM environment (./bootstrap.sh vllm). CI sets BARD_REQUIRE_VLLM=1: missing is a failure."""
    if not VLLM_PYTHON.is_file():
        message = f"no vLLM environment at {VLLM_PYTHON}; create it with ./bootstrap.sh vllm"
        if os.environ.get("BARD_REQUIRE_VLLM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def vllm_server(vllm_python: Path, toy_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI-compatible server (the CPU build) on 127.0.0.1 with the tiny model; its process group is
    stopped by PID at the end."""
    from tests.support.vllm_serve import vllm_serve  # here: that module imports this one

    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    with vllm_serve(vllm_python, toy_model_dir, log, ["--served-model-name", "toy"]) as url:
        yield url


@dataclass(frozen=True)
class FlowOutcome:
    """What the tests read of a flow's final Prefect state: a plain value, so that workers of a parallel run
    that did not run the flow themselves can read it too."""

    completed: bool
    message: str

    def is_completed(self) -> bool:
        return self.completed


@dataclass(frozen=True)
class SmokeRun:
    state: FlowOutcome
    record: dict[str, Any]
    store: ArtifactStore
    root: Path


@pytest.fixture(scope="session")
def smoke_run(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The smoke recipe end to end, once per test run (shared by xdist workers) for the tests that only read
    its results: evaluated on its held-out toy problems and on a small multiple-choice file with one answerless
    row (which must be counted and skipped)."""
    from bard_pipeline.infra.store import ArtifactStore
    from tests.support.shared import build_once

    root, summary = build_once(tmp_path_factory, "smoke-run", _smoke_run)
    store = ArtifactStore(f"file://{root}/store")
    outcome = FlowOutcome(summary["completed"], summary["message"])
    return SmokeRun(outcome, store.read_run(summary["run_id"]), store, root)


def _smoke_run(root: Path) -> dict[str, Any]:
    mc = root / "mini_mc.jsonl"
    rows = [
        {"id": "q1", "problem": "Which is even? (A) 3 (B) 4 (C) 5 (D) 7", "answer": "B"},
        {"id": "q2", "problem": "Which is prime? (A) 4 (B) 6 (C) 7 (D) 8", "answer": "C"},
        {"id": "q3", "problem": "A question whose answer was lost. (A) 1 (B) 2", "answer": ""},
    ]
    mc.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    benchmarks = (
        "[{kind: ingested, split: test, name: toy-heldout, limit: 8}, "
        f"{{kind: file, name: mini-mc, path: '{mc}', grader: choice}}]"
    )
    from tests.support.flows import run_flow

    with pytest.MonkeyPatch.context() as env:
        env.setenv("BARD_CACHE_DIR", str(root / "cache"))
        # The "no native bf16" path (an AVX2-only CPU), whatever CPU runs the tests: training and the
        # transformers engine must then run in fp32 (the kill-and-resume test runs on the detected hardware).
        env.setenv("BARD_NATIVE_BF16", "0")
        state, record, _ = run_flow([f"store.root=file://{root}/store", f"evaluate.benchmarks={benchmarks}"])
    return {"run_id": record["run_id"], "completed": state.is_completed(), "message": str(state.message)}


@dataclass(frozen=True)
class CliSmokeRun:
    """``benchmarks/gpu_smoke.sh --cpu``: the smoke recipe through every stage as a user runs it (``bard run`` in
    its own process, its own ephemeral Prefect server, vLLM evaluating), once per session."""

    returncode: int
    stdout: str  # the script's report, its figures last
    stderr: str
    run_lines: list[str]  # what `bard run` printed, stdout and stderr together (a pipe, not a terminal)


@pytest.fixture(scope="session")
def cli_smoke_run(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> CliSmokeRun:
    """One full CLI run for the tests that read it (the GPU check's CPU mode, the terminal's readability), once
    per test run (shared by xdist workers): each running its own cost about three minutes of CI."""
    from tests.support.shared import build_once

    _, summary = build_once(tmp_path_factory, "cli-smoke", _cli_smoke_run)
    return CliSmokeRun(**summary)


def _cli_smoke_run(root: Path) -> dict[str, Any]:
    from bard_pipeline.infra import progress

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", progress.VERBOSE_ENV)}
    env |= {"BARD_CACHE_DIR": str(root / "cache"), "BARD_SMOKE_LOG": str(root / "run.log")}
    script = [str(REPO / "benchmarks" / "gpu_smoke.sh"), "--cpu"]
    done = subprocess.run(script, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = root / "run.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "run_lines": lines}
