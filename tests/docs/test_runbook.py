"""The run book's commands cannot drift: each one parses against the real command-line definitions (bard,
prefect, our scripts), names files that exist, and every block is valid bash."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

RUNBOOK = REPO / "docs/RUNBOOK.md"


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    assert blocks, "the run book has no bash blocks"
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def _parse_bard(argv: list[str]) -> None:
    """Parse with bard's real click commands, their callbacks replaced by no-ops (nothing runs)."""
    import typer

    from bard_pipeline.flows.cli import app

    root = typer.main.get_command(app)  # a fresh click tree: patching it leaves the app alone

    def silence(command: Any) -> None:
        command.callback = lambda *a, **k: None
        for sub in getattr(command, "commands", {}).values():
            silence(sub)

    silence(root)
    root.main(list(argv), prog_name="bard", standalone_mode=False)


def _parse_prefect(argv: list[str]) -> None:
    """Parse with Prefect's own CLI definition (cyclopts), without running the command."""
    import importlib

    from prefect.cli._app import _app

    importlib.import_module(f"prefect.cli.{argv[0].replace('-', '_')}")  # commands register on import
    _app.parse_args(list(argv), exit_on_error=False, print_error=False)


def _script(path: str) -> Any:
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(argv: list[str]) -> str:
    program, args = argv[0], argv[1:]
    if program.endswith("bard"):
        _parse_bard(args)
        return "bard"
    if program == "prefect":
        _parse_prefect(args)
        return "prefect"
    if program.endswith("python"):
        script = _script(args[0])
        script.build_parser().parse_args(args[1:])
        return "script"
    if program in ("./bootstrap.sh", "benchmarks/gpu_smoke.sh"):
        assert (REPO / program).is_file()
        usage = (REPO / program).read_text()
        assert all(a in usage for a in args), f"{program} does not take {args}"
        return "shell script"
    if program == "docker":
        assert args[:2] == ["compose", "-f"] and (REPO / args[2]).is_file()
        return "compose"
    if program == "kubectl":
        assert args[:2] == ["apply", "-f"] and args[2].startswith("build/k8s/")
        template = args[2].removeprefix("build/k8s/").replace(".rendered", "")
        assert (REPO / "bard_pipeline/infra/k8s" / template).is_file()
        return "kubectl"
    if program in ("cp", "export"):
        return "shell"
    raise AssertionError(f"run book command {argv} is of no kind the test knows; teach it how to check it")


def test_every_runbook_command_parses() -> None:
    kinds = [check(argv) for argv in _commands()]
    assert {"bard", "prefect", "script", "compose", "kubectl", "shell script"} <= set(kinds)


def test_every_runbook_block_is_valid_bash() -> None:
    for block in re.findall(r"```bash\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL):
        subprocess.run(["bash", "-n"], input=block, text=True, check=True)


def test_the_checker_rejects_drift() -> None:
    from cyclopts.exceptions import CycloptsError

    # typer vends its own copy of click, so its usage errors are matched by message
    with pytest.raises(Exception, match="No such option: --opne"):
        check([".venv/bin/bard", "report", "RUN_ID", "--opne"])
    with pytest.raises(Exception, match="No such command 'lz'"):
        check([".venv/bin/bard", "artifacts", "lz"])
    with pytest.raises(CycloptsError):
        check(["prefect", "work-pool", "create", "bard-k8s", "--typo", "kubernetes"])
    with pytest.raises(SystemExit):
        check(
            [".venv/bin/python", "bard_pipeline/infra/k8s/render.py", "--gpu-type", "H100"]
        )  # required options missing
