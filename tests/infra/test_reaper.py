"""The reaper: a driver killed outright (SIGKILL) leaves no process and no scratch behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import REPO

DRIVER = """
import json, subprocess, sys, time
from bard_pipeline.infra.reaper import guard
scratch = guard()
(scratch / "partial.bin").write_bytes(b"x")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
grandchild = subprocess.Popen(["bash", "-c", "sleep 300 & wait"])
print(json.dumps({"scratch": str(scratch), "children": [child.pid, grandchild.pid]}), flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def test_a_sigkilled_driver_leaves_no_process_and_no_scratch(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("BARD_SYSTEM_TMPDIR", None)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, env=env)
    assert driver.stdout is not None
    started = json.loads(driver.stdout.readline())
    scratch = Path(started["scratch"])
    assert scratch.parent == tmp_path and (scratch / "partial.bin").is_file()
    time.sleep(1.5)  # the reaper polls the driver's descendants twice a second
    tree = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
    assert len(tree) >= 3  # the python child, bash and its sleep
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        assert _wait_gone(tree, timeout_s=30) == []
    finally:
        for pid in tree:  # the test's own cleanup, should the reaper have failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while scratch.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not scratch.exists()


def test_a_guarded_process_keeps_machine_wide_folders_outside_its_scratch(tmp_path: Path) -> None:
    code = (
        "import tempfile; from bard_pipeline.infra.reaper import guard, system_tmp; "
        "from bard_pipeline.infra.local_cache import cache_root; from bard_core.config import RayConfig; "
        "from bard_pipeline.infra.ray_runtime import init_options; s = guard(); "
        "print(s, tempfile.gettempdir(), system_tmp(), cache_root(), init_options(RayConfig(), False)['_temp_dir'])"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for key in ("BARD_SYSTEM_TMPDIR", "BARD_CACHE_DIR"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    scratch, temp, system, cache, ray_temp = out.stdout.split()
    assert temp == scratch and Path(scratch).parent == tmp_path
    assert system == str(tmp_path) and cache == str(tmp_path / "bard-cache") and ray_temp == str(tmp_path / "bard-ray")
