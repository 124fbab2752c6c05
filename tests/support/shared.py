"""Session fixtures built once per test run, however many pytest-xdist workers share it.

Each xdist worker is its own process with its own session fixtures, so a session fixture that runs the whole
pipeline (the smoke run, the CLI run) would run once per worker. The first worker to ask builds it under the
run's common temporary folder while holding a file lock; the others wait on the lock and read what it left
(pytest-xdist's documented recipe). Without xdist it is a plain build in the session's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder every worker of this run sees (a worker's own base folder is one level down)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """``build(folder)`` run once per test run; returns the folder and the JSON summary ``build`` returned.

    A build that raises leaves no summary, so the next worker to ask builds again (and fails the same way,
    with its own traceback) rather than reading a half-made folder.
    """
    root = run_root(tmp_path_factory)
    folder, summary_file = root / name, root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if summary_file.is_file():
            summary: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8"))
            return folder, summary
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        summary = build(folder)
        summary_file.write_text(json.dumps(summary), encoding="utf-8")
        return folder, summary
