"""A real two-node Ray cluster on 127.0.0.1 for tests: a head (`ray start --head`) and a second node
(`ray start --address`), each its own raylet with its own CPUs; the second carries a `worker_node` resource.

Every listener stays on loopback: both nodes run with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray then keeps
127.0.0.1 instead of rewriting it to the host's public IP). With that setting `ray start --address` refuses
to add a node (a guard meant for macOS laptops); `ray_node.py` runs the same `ray start` with only that
guard lifted, as Ray's own multi-node tests on one machine do. Both run with `--block` in new sessions, so
stopping them is stopping their process trees, by PID (never `ray stop`, which kills by name machine-wide).

The nodes run from an empty folder with this environment's `bin` first on PATH: a job's `python` is this
environment's, and its `bard_*` code comes from the job's runtime env, not from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bard_pipeline.infra.stack import stop_tree
from tests.conftest import free_port

HOST = "127.0.0.1"
NODE_SCRIPT = Path(__file__).with_name("ray_node.py")


@dataclass(frozen=True)
class RayCluster:
    gcs_address: str
    dashboard: str  # the Jobs API
    head_node_id: str
    worker_node_id: str
    cwd: Path  # where the nodes (and so the jobs' drivers) run
    worker_pid: int  # `ray start --block` of the second node: its raylet and workers are under it

    def actors_on_worker(self) -> int:
        """Live actors on the second node (what losing it takes down)."""
        from ray.util.state import list_actors

        filters = [("node_id", "=", self.worker_node_id), ("state", "=", "ALIVE")]
        return len(list_actors(address=self.dashboard, filters=filters, limit=1000))  # type: ignore[arg-type]

    def kill_worker_node(self) -> None:
        """Lose the second node as a crashed machine would: SIGKILL its whole process tree, at once."""
        import psutil

        tree = [psutil.Process(self.worker_pid), *psutil.Process(self.worker_pid).children(recursive=True)]
        for process in tree:
            try:
                process.kill()
            except psutil.Error:
                continue


def _ports() -> list[str]:
    # Two raylets on one host: every per-node port explicit, or the second node's defaults collide.
    flags = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")  # fmt: skip
    return [arg for flag in flags for arg in (flag, str(free_port()))]


def _alive_nodes(dashboard: str) -> list[dict[str, object]]:
    try:
        nodes = httpx.get(f"{dashboard}/nodes?view=summary", timeout=2).json()["data"]["summary"]
    except (httpx.HTTPError, KeyError, ValueError):
        return []
    return [n for n in nodes if n["raylet"]["state"] == "ALIVE"]


def _wait(what: str, ready: object, procs: list[subprocess.Popen[bytes]], logs: list[Path], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: `ray start` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} not ready after {timeout_s:.0f} s:\n" + "\n".join(p.read_text()[-2000:] for p in logs)
            )
        time.sleep(0.5)


@contextmanager
def two_node_cluster(root: Path, worker_cpus: int = 1) -> Iterator[RayCluster]:
    """Head (1 CPU) and a second node (``worker_cpus`` CPUs, resource ``worker_node``), stopped at the end."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "DO_NOT_TRACK": "1"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    cwd = root / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix="rj"))  # short: Ray puts Unix sockets there
    gcs, dash = free_port(), free_port()
    dashboard = f"http://{HOST}:{dash}"
    head_cmd = [f"{bin_dir}/ray", "start", "--head", "--block", "--node-ip-address", HOST, "--port", str(gcs),
                "--dashboard-host", HOST, "--dashboard-port", str(dash), "--ray-client-server-port", str(free_port()),
                "--num-cpus", "1", "--temp-dir", str(temp_dir), "--disable-usage-stats", *_ports()]  # fmt: skip
    worker_cmd = [sys.executable, str(NODE_SCRIPT), "start", "--block", "--address", f"{HOST}:{gcs}",
                  "--node-ip-address", HOST, "--num-cpus", str(worker_cpus),
                  "--resources", json.dumps({"worker_node": 1}), "--disable-usage-stats", *_ports()]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    logs = [root / "head.log", root / "worker.log"]
    try:
        for command, log in zip((head_cmd, worker_cmd), logs, strict=True):
            with log.open("wb") as out:
                procs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))  # fmt: skip
            expected = len(procs)
            _wait(
                f"Ray node {expected}",
                lambda n=expected: len(_alive_nodes(dashboard)) >= n,
                procs,
                logs[:expected],
                120,
            )
        nodes = _alive_nodes(dashboard)
        head = next(n for n in nodes if n["raylet"]["isHeadNode"])  # type: ignore[index]
        worker = next(n for n in nodes if not n["raylet"]["isHeadNode"])  # type: ignore[index]
        ids = head["raylet"]["nodeId"], worker["raylet"]["nodeId"]  # type: ignore[index]
        yield RayCluster(f"{HOST}:{gcs}", dashboard, *ids, cwd, procs[1].pid)
    finally:
        for proc in reversed(procs):  # the second node first, then the head and its GCS
            stop_tree(proc.pid, 5.0)
        shutil.rmtree(temp_dir, ignore_errors=True)
