"""`bard serve`'s budget enforcement (the middleware's request rewrite) and its command line, without vLLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bard_core.chat_contract import CONTRACT_FILE
from bard_core.config import BudgetConfig
from bard_pipeline.infra.serving import enforce
from bard_pipeline.infra.serving.enforce import BudgetEnforcement, forced_budget_tokens, rewrite
from bard_pipeline.infra.serving.launcher import ServeOptions, server_command, server_env
from tests.conftest import free_port


@pytest.fixture
def contract() -> Any:
    modes = {"low": {"tier_tokens": 16}, "medium": {"share": 0.5}, "high": {"tier_tokens": 64}}
    return BudgetConfig.model_validate({"tiers_tokens": [16, 32, 64], "tolerance": 0.25, "modes": modes}).contract()


def test_a_budget_or_a_tier_mode_is_enforced_at_its_upper_bound(contract: Any) -> None:
    assert forced_budget_tokens({"chat_template_kwargs": {"thinking_budget": 32}}, contract) == 40
    assert forced_budget_tokens({"reasoning_effort": "low"}, contract) == 20
    assert forced_budget_tokens({"chat_template_kwargs": {"reasoning_effort": "high"}}, contract) == 80
    assert forced_budget_tokens({"chat_template_kwargs": {"thinking_budget": 32}}, contract, margin_tokens=3) == 37
    assert forced_budget_tokens({}, contract) == 80  # no budget: the contract's default (the largest tier)


def test_share_modes_and_refused_requests_are_not_enforced(contract: Any) -> None:
    assert forced_budget_tokens({"reasoning_effort": "medium"}, contract) is None  # a share: no token bound
    assert forced_budget_tokens({"chat_template_kwargs": {"thinking_budget": 999}}, contract) is None
    assert forced_budget_tokens({"reasoning_effort": "xhigh"}, contract) is None
    assert forced_budget_tokens({"chat_template_kwargs": {"thinking_budget": "many"}}, contract) is None


def test_the_request_overrides_the_default_and_its_own_budget_wins(contract: Any) -> None:
    body = {"reasoning_effort": "low", "bard_enforce": False}
    assert rewrite(dict(body), contract, True, 0) == {"reasoning_effort": "low"}  # the field never reaches vLLM
    assert rewrite({"reasoning_effort": "low", "bard_enforce": True}, contract, False, 0)["thinking_token_budget"] == 20
    own = {"reasoning_effort": "low", "thinking_token_budget": 7}
    assert rewrite(dict(own), contract, True, 0)["thinking_token_budget"] == 7


def _call(app_env: dict[str, str], body: bytes, headers: list[tuple[bytes, bytes]], monkeypatch: Any) -> Any:
    for key, value in app_env.items():
        monkeypatch.setenv(key, value)
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen["body"], seen["headers"] = message["body"], dict(scope["headers"])

    async def receive() -> Any:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    asyncio.run(BudgetEnforcement(app)(scope, receive, send))
    return seen


def test_the_middleware_rewrites_the_body_and_its_length(contract: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "bard_budget.json"
    path.write_text(contract.dumps())
    env = {enforce.CONTRACT_ENV: str(path), enforce.ENFORCE_ENV: "1"}
    body = json.dumps({"model": "m", "messages": [], "chat_template_kwargs": {"thinking_budget": 16}}).encode()
    seen = _call(env, body, [(b"content-length", str(len(body)).encode())], monkeypatch)
    assert json.loads(seen["body"])["thinking_token_budget"] == 20
    assert seen["headers"][b"content-length"] == str(len(seen["body"])).encode()
    off = _call(env, body, [(b"x-bard-enforce", b"0")], monkeypatch)  # the header turns it off per request
    assert "thinking_token_budget" not in json.loads(off["body"])
    assert b"x-bard-enforce" not in off["headers"]


def test_the_middleware_needs_the_contract(monkeypatch: Any) -> None:
    monkeypatch.delenv(enforce.CONTRACT_ENV, raising=False)
    with pytest.raises(RuntimeError, match="BARD_BUDGET_CONTRACT"):
        BudgetEnforcement(lambda *a: None)  # type: ignore[arg-type]


def test_the_server_command_carries_the_reasoning_config_and_the_middleware(tmp_path: Path) -> None:
    options = ServeOptions(port=8123, served_model_name="s", enforce_budget=False, cpu=True, dtype="float32")
    command = server_command(Path("py"), tmp_path, options)
    assert command[command.index("--middleware") + 1] == "bard_pipeline.infra.serving.enforce.BudgetEnforcement"
    assert json.loads(command[command.index("--reasoning-config") + 1])["reasoning_end_str"] == "</think>"
    assert {"--enforce-eager", "--no-enable-chunked-prefill"} <= set(command)
    env = server_env(tmp_path, options)
    assert env[enforce.ENFORCE_ENV] == "0" and env[enforce.CONTRACT_ENV].endswith("bard_budget.json")


def test_bard_serve_is_the_student_server_and_the_deployments_moved() -> None:
    from bard_pipeline.flows.cli import app

    runner = CliRunner()
    assert "thinking_budget" in runner.invoke(app, ["serve", "--help"]).output
    assert "deployments" in runner.invoke(app, ["serve-deployments", "--help"]).output
    missing = runner.invoke(app, ["serve", "sft/0123456789abcdef0123", "--store", "file:///nonexistent-bard-store"])
    assert missing.exit_code == 2


def test_bard_up_student_starts_bard_serve_as_a_component(tmp_path: Path) -> None:
    from bard_pipeline.flows import stack_cli

    calls: list[tuple[Any, ...]] = []

    class Recorder:
        def start(self, *args: Any, **kwargs: Any) -> None:
            calls.append((*args, kwargs))

    stack_cli._start_student(Recorder(), {}, "latest", 8123, None, "toy")  # type: ignore[arg-type]
    name, command, _, port, health, kwargs = calls[0]
    assert (name, port, health) == ("student", 8123, "http://127.0.0.1:8123/health")
    assert command[2:6] == ["bard_pipeline.flows.cli", "serve", "latest", "--port"]
    assert command[-2:] == ["--recipe", "toy"]  # the recipe's store, its endpoint included
    assert kwargs["timeout_s"] >= 300  # vLLM takes a minute or more to start on a CPU


# Stands in for vLLM's python (one layer's test: the launcher's process handling): answers /health on --port.
FAKE_SERVER = """#!{python}
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_a_terminated_caller_stops_the_server_it_started(contract: Any, tmp_path: Path) -> None:
    # The server runs in its own session; before the fix, SIGTERM to a benchmark left it serving.
    fake = tmp_path / "python"
    fake.write_text(FAKE_SERVER.format(python=sys.executable))
    fake.chmod(0o755)
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / CONTRACT_FILE).write_text(json.dumps(contract.to_json()))
    port = free_port()
    caller = (
        "import sys, time\nfrom pathlib import Path\n"
        "from bard_pipeline.infra.serving.launcher import ServeOptions, serving\n"
        f"with serving(Path({str(fake)!r}), Path({str(folder)!r}), ServeOptions(port={port}), ready_s=60) as s:\n"
        "    print(s.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", caller], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    server_pid = int(process.stdout.readline())
    try:
        assert _answers(f"http://127.0.0.1:{port}/health")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) != 0
        deadline = time.monotonic() + 30
        while _answers(f"http://127.0.0.1:{port}/health") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _answers(f"http://127.0.0.1:{port}/health"), "the server outlived the process that started it"
    finally:
        process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server_pid, signal.SIGKILL)
