"""Every script under benchmarks/ runs on a fresh checkout at its smallest size and ends its output with a
machine-readable `key=value` line (the figures a person or a CI job compares between runs).

The scripts are discovered by glob, so a new benchmark without a case here fails the suite until it gets
one. Each case is the script's smallest-size arguments (about a minute on 2 cores) and the keys its last
line must carry. A script that reads or extends an earlier run takes the session's smoke run (a copy of its
store: `{store}`, its run id: `{run}`) instead of training one of its own, which would cost minutes each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SmokeRun
from tests.support.benchmarks import last_line_figures

BENCHMARKS = REPO / "benchmarks"

# script -> (smallest-size arguments, keys its last line must carry)
CASES: dict[str, tuple[list[str], set[str]]] = {
    "chaos.py": (
        # the table and totals of one fault; the runs' faults are tests/reliability's
        ["--clean-store", "{store}", "--faults", "bad-input", "--bad-input-examples", "20"],
        {"trials", "survived", "failed", "lost", "duplicated", "secret_hits"},
    ),
    "engine_throughput.py": (
        ["--problems", "16", "--max-new-tokens", "32"],  # transformers only: --vllm doubles the cost
        {"engine_ratio", "engine_tok_s", "engine_direct_tok_s"},
    ),
    "evaluate_throughput.py": (
        ["--store", "{store}", "--run", "{run}", "--recipe", "configs/smoke.yaml", "--problems", "8", "--k", "1"],
        {"evaluate_ratio", "evaluate_tok_s", "evaluate_direct_tok_s", "evaluate_wall_s"},
    ),
    "lab_targets.py": (
        ["{run}", "--store", "{store}", "--recipe", "configs/smoke.yaml"],
        {"sft_acc_max", "rl_spearman_acc", "rl_dev_tiers", "rl_minus_sft_reward", "ci_low", "ci_high"},
    ),
    "sft_throughput.py": (
        ["--steps", "5", "--recipe", "configs/smoke.yaml", "--store", "{store}"],
        {"sft_ratio", "sft_tok_s"},
    ),
    "toy_data_stages.py": (
        ["configs/smoke.yaml", "--problems", "40"],
        {"data_first_s", "data_rerun_s", "data_rerun_ratio"},
    ),
}
# Second cases that need the vLLM environment (./bootstrap.sh vllm), run where vllm-marked tests run; the
# last line must start with the first key.
VLLM_CASES: dict[str, tuple[list[str], list[str]]] = {
    "engine_throughput.py": (
        ["--vllm-only", "--problems", "16", "--max-new-tokens", "32"],
        [
            "vllm_steady_ratio",
            "vllm_steady_tok_s",
            "vllm_direct_steady_tok_s",
            "vllm_startup_s",
            "vllm_direct_startup_s",
        ],
    ),
}
# Scripts another test already runs (and checks the last line of): running them twice would double CI time.
ELSEWHERE = {
    "gpu_smoke.sh": "tests/benchmarks/test_gpu_smoke.py runs it with --cpu",
    "serve_fidelity.py": "tests/flows/test_serve.py runs it on the student it trains and serves",
}
TIMEOUT_S = 600


def _scripts() -> list[str]:
    return sorted(p.name for p in BENCHMARKS.iterdir() if p.is_file() and p.suffix in {".py", ".sh"})


def test_every_benchmark_has_a_case() -> None:
    missing = sorted(set(_scripts()) - set(CASES) - set(ELSEWHERE))
    assert not missing, f"benchmarks without a case in {Path(__file__).name}: {missing}"
    stale = sorted((set(CASES) | set(VLLM_CASES) | set(ELSEWHERE)) - set(_scripts()))
    assert not stale, f"cases for scripts that no longer exist: {stale}"


@pytest.fixture(scope="module")
def smoke_copy(smoke_run: SmokeRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The placeholders of a case: a copy of the smoke run's store (the scripts add runs and artifacts to it,
    which the tests reading the original must not see) and the run's id."""
    store = tmp_path_factory.mktemp("bench-store") / "store"
    shutil.copytree(smoke_run.root / "store", store)
    return {"store": f"file://{store}", "run": smoke_run.record["run_id"]}


@pytest.mark.slow
@pytest.mark.parametrize("script", _scripts())
def test_benchmark_runs_at_its_smallest_size(script: str, request: pytest.FixtureRequest) -> None:
    if script in ELSEWHERE:
        pytest.skip(ELSEWHERE[script])
    if script not in CASES:
        pytest.fail(f"{script} has no case in {Path(__file__).name} (smallest-size arguments and expected keys)")
    args, keys = CASES[script]
    if any("{" in arg for arg in args):
        placeholders = request.getfixturevalue("smoke_copy")
        args = [arg.format(**placeholders) for arg in args]
    _run(script, args, keys)


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("script", sorted(VLLM_CASES))
def test_vllm_benchmark_runs_at_its_smallest_size(script: str, vllm_python: Path) -> None:
    args, keys = VLLM_CASES[script]
    figures = _run(script, args, set(keys))
    assert next(iter(figures)) == keys[0], f"{script}: the last line must start with {keys[0]}=: {figures}"
    assert all(figures[key] > 0 for key in keys), figures


def _run(script: str, args: list[str], keys: set[str]) -> dict[str, float]:
    # The script's own Prefect API and Ray runtime, never the test session's.
    env = {k: v for k, v in os.environ.items() if k not in {"PREFECT_API_URL", "RAY_ADDRESS"}}
    path = BENCHMARKS / script
    command = [str(path), *args] if path.suffix == ".sh" else [sys.executable, str(path), *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = last_line_figures(result.stdout)
    assert keys <= set(figures), f"{script}: last line lacks {sorted(keys - set(figures))}: {figures}"
    return figures
