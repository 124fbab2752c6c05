"""Budget enforcement inside vLLM's OpenAI server: a pure-ASGI middleware (``--middleware``) that reads each
chat completion's budget and sets vLLM's own ``thinking_token_budget`` to the contract's upper bound, so the
engine forces ``</think>`` once the reasoning reaches it (budget forcing).

It runs in the vLLM environment, so it imports only the standard library and ``bard_core``. vLLM adds the
class without arguments; the launcher configures it through the environment:

- ``BARD_BUDGET_CONTRACT``: the exported ``bard_budget.json`` (required);
- ``BARD_ENFORCE_BUDGET``: ``1`` (enforce by default) or ``0``;
- ``BARD_ENFORCE_MARGIN_TOKENS``: tokens kept below the bound (vLLM counts generated tokens after ``<think>``;
  the judge re-encodes the stripped reasoning, which can differ by a token or two).

A request may override the default with the body field ``bard_enforce`` (true/false; removed before vLLM sees
it) or the header ``x-bard-enforce: 0|1``. A ``thinking_token_budget`` the client set itself is left alone.
A share mode (``{share: s}``) has no token bound, so its requests are never enforced. A request the contract
refuses (a budget outside the trained range, an unknown mode) passes through untouched: the chat template
rejects it with the same message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from bard_core.budget import BudgetError
from bard_core.chat_contract import BudgetContract

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTRACT_ENV = "BARD_BUDGET_CONTRACT"
ENFORCE_ENV = "BARD_ENFORCE_BUDGET"
MARGIN_ENV = "BARD_ENFORCE_MARGIN_TOKENS"
ENFORCE_FIELD = "bard_enforce"
ENFORCE_HEADER = b"x-bard-enforce"
CHAT_PATH = "/v1/chat/completions"


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def forced_budget_tokens(body: dict[str, Any], contract: BudgetContract, margin_tokens: int = 0) -> int | None:
    """The ``thinking_token_budget`` enforcement sets for a chat request, or None (a share mode, a refused
    request, or one whose budget the contract cannot read)."""
    kwargs = body.get("chat_template_kwargs") or {}
    budget = kwargs.get("thinking_budget")
    effort = body.get("reasoning_effort") or kwargs.get("reasoning_effort")
    try:
        bound = contract.upper_bound_tokens(None if budget is None else int(budget), effort)
    except (BudgetError, TypeError, ValueError):
        return None
    return None if bound is None else max(1, bound - margin_tokens)


def rewrite(body: dict[str, Any], contract: BudgetContract, enforce: bool, margin_tokens: int) -> dict[str, Any]:
    """The body vLLM receives: the override field removed and, when enforcing, ``thinking_token_budget`` set."""
    override = body.pop(ENFORCE_FIELD, None)
    if override is not None:
        enforce = override if isinstance(override, bool) else _truthy(str(override))
    if enforce and body.get("thinking_token_budget") is None:
        forced = forced_budget_tokens(body, contract, margin_tokens)
        if forced is not None:
            body["thinking_token_budget"] = forced
    return body


class BudgetEnforcement:
    """ASGI middleware: rewrites ``POST /v1/chat/completions`` bodies (see the module docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        path = os.environ.get(CONTRACT_ENV)
        if not path:
            raise RuntimeError(f"{CONTRACT_ENV} is not set: point it at the exported model's bard_budget.json")
        self.contract = BudgetContract.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        self.enforce = _truthy(os.environ.get(ENFORCE_ENV, "1"))
        self.margin_tokens = int(os.environ.get(MARGIN_ENV, "0"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != CHAT_PATH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:  # the whole body first: it is small JSON
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)  # a disconnect: let vLLM see it
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != ENFORCE_HEADER]
        enforce = self.enforce
        header = next((v for k, v in scope.get("headers", []) if k.lower() == ENFORCE_HEADER), None)
        if header is not None:
            enforce = _truthy(header.decode("latin-1"))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # not JSON: vLLM answers with its own error
        if isinstance(body, dict):
            raw = json.dumps(rewrite(body, self.contract, enforce, self.margin_tokens)).encode()
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        scope = {**scope, "headers": headers}
        replay = _replay([{"type": "http.request", "body": raw, "more_body": False}], receive)
        await self.app(scope, replay, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A ``receive`` that yields ``messages`` once, then defers to ``then`` (disconnects while streaming)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
