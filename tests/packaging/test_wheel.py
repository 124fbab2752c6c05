"""The built wheel, installed into a fresh virtual environment, runs from a folder that is not a checkout.

The fresh environment gets the wheel only (``--no-deps``); its dependencies come from the test environment's
site-packages through a plain path entry, which does not activate that environment's editable install of this
project. So every import of ``bard_core`` / ``bard_pipeline`` below resolves to the wheel's copy, and the
recipes it finds are the packaged ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("bard_pipeline-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # dependencies only, no .pth processing
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        timeout=300,
    )
    return root


def _run(venv_root: Path, cwd: Path, tool: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``tool`` from the fresh environment's bin/, in ``cwd``, without this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREFECT_API_URL", "VIRTUAL_ENV")}
    env["BARD_CACHE_DIR"] = str(cwd / "cache")
    command = [str(venv_root / "bin" / tool), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


def test_the_wheel_holds_one_namespace_the_recipes_and_type_markers(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"bard_core", "bard_pipeline"}, top  # no `infra`, `tasks`, `flows` at the top level
    for expected in (
        "bard_core/recipes/toy.yaml",
        "bard_core/recipes/experiments/bard-claims.yaml",
        "bard_core/py.typed",
        "bard_pipeline/py.typed",
        "bard_core/prompts/budget_user.txt",
    ):
        assert expected in names, expected


@pytest.mark.slow
def test_an_installed_wheel_runs_the_toy_data_stages_from_any_folder(fresh_venv: Path, tmp_path: Path) -> None:
    where = _run(fresh_venv, tmp_path, "python", "-c", "import bard_core, bard_pipeline; print(bard_core.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv), where.stdout  # the wheel's copy, not the checkout

    listed = _run(fresh_venv, tmp_path, "bard", "recipes")
    assert listed.returncode == 0 and "toy" in listed.stdout and "experiments/bard-claims" in listed.stdout, listed

    store = tmp_path / "store"
    done = _run(
        fresh_venv,
        tmp_path,
        "bard",
        "run",
        "toy",
        "--until",
        "materialize",
        f"store.root=file://{store}",
        timeout_s=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "terminate called" not in done.stderr
    manifests = sorted(p.parent.parent.name for p in store.glob("*/*/manifest.json"))
    assert {"ingest", "sample", "compress", "materialize"} <= set(manifests), manifests
