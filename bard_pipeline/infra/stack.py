"""The local stack behind `bard up|status|down`: a Prefect server (API + UI), the process that serves our
deployments, and optionally an S3 server (moto) and a Ray head, all on 127.0.0.1.

Each component runs in its own session (``setsid``), so it and everything it spawns can be stopped
together; its PID, command, port and log file are recorded in ``<state dir>/stack.json``. `down` stops
exactly those process trees (SIGTERM, then SIGKILL for stragglers) and never matches processes by name:
the machine may be shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A component did not start, or the stack is in a state the command cannot act on."""


@dataclass
class Component:
    name: str
    pid: int
    port: int | None
    url: str | None
    log: str
    command: list[str]
    started_at: float = field(default_factory=time.time)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # like the servers themselves: connections of a just-stopped server (TIME_WAIT) do not block it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class Stack:
    """The recorded stack in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.file = state_dir / "stack.json"

    def components(self) -> dict[str, Component]:
        if not self.file.exists():
            return {}
        data = json.loads(self.file.read_text(encoding="utf-8"))
        return {name: Component(**value) for name, value in data.get("components", {}).items()}

    def _save(self, components: Mapping[str, Component]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        payload = {"components": {n: asdict(c) for n, c in components.items()}}
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        tmp.replace(self.file)

    def start(
        self, name: str, command: Sequence[str], env: Mapping[str, str], port: int | None, health_url: str | None,
        timeout_s: float = 120.0, cwd: Path | None = None,
    ) -> Component:  # fmt: skip
        """Start one component in its own session, record it, and wait until it is healthy."""
        running = self.components()
        if name in running and alive(running[name].pid):
            raise StackError(f"{name} is already running (pid {running[name].pid}); `bard down` first")
        if port is not None and not port_free(port):
            raise StackError(f"port {port} on {HOST} is taken; pass another port or stop what uses it")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
            )
        url = health_url.rsplit("/api", 1)[0] if health_url else None
        component = Component(name, proc.pid, port, url, str(log), list(command))
        running[name] = component
        self._save(running)
        if health_url is not None:
            wait_healthy(health_url, proc, timeout_s, log)
        return component

    def stop(self, timeout_s: float = 10.0) -> list[str]:
        """Stop every recorded component (last started first); returns what was stopped."""
        components = self.components()
        stopped = []
        for name in reversed(list(components)):
            stop_tree(components[name].pid, timeout_s)
            stopped.append(name)
        if self.file.exists():
            self.file.unlink()
        return stopped

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.components().values():
            rows.append({"name": c.name, "pid": c.pid, "alive": alive(c.pid), "url": c.url or "", "log": c.log})
        return rows


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise StackError(f"{proc.args!r} exited with {proc.returncode} before it was healthy; log {log}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise StackError(f"{url} was not healthy within {timeout_s:.0f} s; see {log}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def descendants(pid: int) -> list[int]:
    """The process tree under ``pid``, found through /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().split(")")[-1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_tree(pid: int, timeout_s: float) -> None:
    """SIGTERM the component's session and its process tree, then SIGKILL whatever is left (some Ray
    daemons ignore SIGTERM)."""
    tree = [pid, *descendants(pid)]
    for target in tree:
        _signal(target, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.2)
    for target in tree:
        if alive(target):
            _signal(target, signal.SIGKILL)
    _reap(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # our own child (tests start the stack in-process): collect it so it is not left a zombie
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def python() -> str:
    return sys.executable
