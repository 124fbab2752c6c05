"""An OpenAI-compatible HTTP server for tests that injects 429 / 500 / slow / context-length responses.

Requests that are not faulted are answered by a canned completion, or proxied to a real upstream server
(e.g. `vllm serve`) when one is given. The canned completion comes in one of two shapes: ``inline`` (the
think block inside ``content``, as a plain chat model writes it) or ``deepseek`` (DeepSeek's reasoner API:
the chain of thought in ``message.reasoning_content``, the answer alone in ``content``). With ``require_key``
set, a request whose ``Authorization: Bearer`` differs gets a 401 with OpenAI's ``invalid_api_key`` body,
quoting the key it was sent in full (as some proxies do: the worst case for a client that records error
bodies). It runs in a thread on 127.0.0.1, counts what it saw and keeps the request bodies it received.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CANNED_REASONING = "I add the numbers and check the sum."
CANNED_ANSWER = "The answer is \\boxed{42}."
CANNED = f"<think>\n{CANNED_REASONING}\n</think>\n\n{CANNED_ANSWER}"


@dataclass
class FaultPlan:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_slow: float = 0.0
    slow_s: float = 3.0
    retry_after_s: float | None = None
    context_chars: int = 1_000_000  # prompts longer than this get a vLLM-style 400
    upstream: str | None = None
    shape: Literal["inline", "deepseek"] = "inline"
    seed: int = 0
    require_key: str | None = None  # 401 (OpenAI's invalid_api_key body) unless the bearer is this key
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every request body received, in order
    statuses: Counter[int] = field(default_factory=Counter)
    calls: int = 0
    max_in_flight: int = 0
    _in_flight: int = 0


def build_app(plan: FaultPlan) -> FastAPI:
    app = FastAPI()
    rng = random.Random(plan.seed)
    lock = threading.Lock()

    def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        plan.statuses[status] += 1
        return JSONResponse(body, status_code=status, headers=headers)

    def unauthorized(request: Request) -> JSONResponse | None:
        if plan.require_key is None:
            return None
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if presented == plan.require_key:
            return None
        message = (
            f"Incorrect API key provided: {presented or '(none)'}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
        return answer(401, {"error": error})

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        denied = unauthorized(request)
        return denied if denied is not None else {"object": "list", "data": [{"id": "fault-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        with lock:
            plan.bodies.append(body)
            plan.calls += 1
            plan._in_flight += 1
            plan.max_in_flight = max(plan.max_in_flight, plan._in_flight)
            roll = rng.random()
        try:
            if (denied := unauthorized(request)) is not None:
                return denied
            if roll < plan.rate_429:
                headers = {"retry-after": str(plan.retry_after_s)} if plan.retry_after_s is not None else None
                return answer(429, {"error": {"message": "rate limited"}}, headers)
            if roll < plan.rate_429 + plan.rate_500:
                return answer(500, {"error": {"message": "internal error"}})
            if roll < plan.rate_429 + plan.rate_500 + plan.rate_slow:
                await asyncio.sleep(plan.slow_s)
            chars = sum(len(m["content"]) for m in body["messages"])
            if chars > plan.context_chars:
                message = (
                    f"This model's maximum context length is {plan.context_chars} tokens. "
                    f"However, you requested {chars} tokens."
                )
                return answer(400, {"error": {"message": message, "type": "BadRequestError"}})
            if plan.upstream:
                async with httpx.AsyncClient(timeout=300) as client:
                    upstream = await client.post(f"{plan.upstream}/chat/completions", json=body)
                return answer(upstream.status_code, upstream.json())
            n = int(body.get("n", 1))
            choices = [{"index": i, "message": _message(plan.shape), "finish_reason": "stop"} for i in range(n)]
            usage: dict[str, Any] = {
                "prompt_tokens": chars // 4,
                "completion_tokens": 12 * n,
                "total_tokens": chars // 4 + 12 * n,
            }
            if plan.shape == "deepseek":
                usage["completion_tokens_details"] = {"reasoning_tokens": 8 * n}
            return answer(
                200,
                {"id": "x", "object": "chat.completion", "model": body["model"], "choices": choices, "usage": usage},
            )
        finally:
            with lock:
                plan._in_flight -= 1

    return app


def _message(shape: str) -> dict[str, Any]:
    if shape == "deepseek":
        return {"role": "assistant", "content": CANNED_ANSWER, "reasoning_content": CANNED_REASONING}
    return {"role": "assistant", "content": CANNED}


class FaultServer:
    def __init__(self, plan: FaultPlan, port: int) -> None:
        self.plan = plan
        self.url = f"http://127.0.0.1:{port}/v1"
        config = uvicorn.Config(build_app(plan), host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        deadline = time.time() + 30
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("fault server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
