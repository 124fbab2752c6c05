"""What `bard run` prints: a bar per stage and the Prefect stage lines, Ray's own chatter only with --verbose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bard_pipeline.flows.distill
from bard_pipeline.flows.cli import app
from bard_pipeline.infra import progress, reaper
from tests.conftest import CONFIGS, REPO, CliSmokeRun

# The toy recipe must print at most 150 lines; the smoke recipe runs the same stages (with as many bars and
# stage lines) on less data, so it gets nearly the same bound.
MAX_LINES = 120
RAY_ERROR = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,]+ E \d+ \d+\]|\bERROR\b")  # Ray's C++ prefix, or a log level
STAGE_BARS = ("sample traces", "compress tiers", "sft", "rl", "evaluate generations_base")


def _bard_run(tmp_path: Path, store: str, *args: str) -> list[str]:
    """`bard run` on the smoke recipe in a subprocess, stdout and stderr together (a pipe, not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", progress.VERBOSE_ENV)}
    env["BARD_CACHE_DIR"] = str(tmp_path / "cache")
    command = [
        sys.executable,
        "-m",
        "bard_pipeline.flows.cli",
        "run",
        str(CONFIGS / "smoke.yaml"),
        f"store.root={store}",
        *args,
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, "\n".join(lines[-60:])
    return lines


@pytest.mark.slow
@pytest.mark.vllm
def test_bard_run_prints_a_readable_terminal(cli_smoke_run: CliSmokeRun, tmp_path: Path) -> None:
    """The session's full CLI run (the GPU check's CPU mode: vLLM evaluates, the noisiest engine), then a
    verbose one of the data stages."""
    lines = cli_smoke_run.run_lines
    assert cli_smoke_run.returncode == 0, cli_smoke_run.stdout[-3000:] + cli_smoke_run.stderr[-3000:]
    text = "\n".join(lines)
    assert len(lines) <= MAX_LINES, text
    assert not [line for line in lines if RAY_ERROR.search(line)], text
    assert "PlacementGroupCleaner" not in text and "logging_progress" not in text, text
    for bar in STAGE_BARS:  # each stage that did work ends its bar
        assert any(re.search(rf"infra\.progress - {bar}: \d+/\d+ \w+ \(100%\)", line) for line in lines), (bar, text)
    announced = [line for line in lines if "Ray logs: " in line]
    assert len(announced) == 1, text
    folder = Path(announced[0].split("Ray logs: ", 1)[1].split(" ", 1)[0])
    assert folder.is_dir() and any(folder.glob("worker-*.err")), folder  # the worker output went there

    # --verbose streams Ray's own output (its Ray Data progress, its workers'): the data stages alone print more.
    loud = _bard_run(tmp_path, f"file://{tmp_path}/store-verbose", "--verbose", "--until", "materialize")
    quiet_data_stages = lines[: next(i for i, line in enumerate(lines) if "sft: building" in line)]
    assert len(loud) > len(quiet_data_stages), "\n".join(loud)
    assert any("Running Dataset" in line or "pid=" in line for line in loud), "\n".join(loud)


def test_run_verbose_sets_the_switch_before_the_flow_starts(monkeypatch: pytest.MonkeyPatch) -> None:

    seen: list[bool] = []

    def fake_distill(**params: Any) -> dict[str, str]:
        seen.append(progress.verbose())
        return {}

    monkeypatch.setattr(bard_pipeline.flows.distill, "distill", fake_distill)
    # Not the guard of a real run: it would repoint this (pytest's) process's TMPDIR and watch it to the end.
    monkeypatch.setattr(reaper, "guard", lambda: Path(tempfile.gettempdir()))
    for name in (progress.VERBOSE_ENV, "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "")  # recorded, so the test leaves the environment as it found it
        monkeypatch.delenv(name)
    with warnings.catch_warnings():  # the quiet run filters transformers' FutureWarnings
        for flag in (["--verbose"], []):
            result = CliRunner().invoke(app, ["run", str(CONFIGS / "smoke.yaml"), *flag])
            assert result.exit_code == 0, result.output
    assert seen == [True, False]
