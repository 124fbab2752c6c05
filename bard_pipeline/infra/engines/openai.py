"""OpenAI-compatible chat-completions engine: async, bounded concurrency, retries, usage, cost, budget.

- Up to ``max_concurrency`` requests in flight per replica; streaming off.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff and full jitter
  (a server's ``Retry-After`` wins), at most ``max_retries`` times.
- A prompt the server rejects as too long for the context is rejected per row (no retry).
- Usage comes from the response; cost from the configured price table.
- Reasoning APIs (DeepSeek's reasoner, `vllm serve --reasoning-parser ...`) return the chain of thought in
  ``message.reasoning_content`` or ``message.reasoning``, apart from the answer in ``content``: the engine puts
  it back into the one assistant-turn format the pipeline parses (``budget.render_assistant``), so grading
  finds the ``</think>`` it needs. A reply whose content already has a think block is kept as it is.
- ``engine.extra_body`` is merged into each request body (the config refuses the fields the engine sets).
- Every call draws from the stage's query budget first; when it is spent, the rest is not sent and is
  recorded as such (never silently dropped).
- Start-up checks the endpoint once with a short timeout, so an unreachable URL fails fast, naming the
  URL, and so does a key the server refuses (401/403), naming its variable (the key is never put in a
  message); otherwise every request of the stage would be recorded as an HTTP 401 row error.
- A server's error body becomes the row's error (traces, logs, the Prefect UI); servers and proxies may quote
  the key they were sent in it (a 401's "Incorrect API key provided: ..."), so the engine masks its own key
  there first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bard_core.budget import THINK_OPEN, parse_think, render_assistant
from bard_core.config import OpenAIEngineConfig
from bard_core.engine import (
    Completion,
    ErrorKind,
    GenerationRequest,
    GenerationResult,
    failed,
    message_chars,
    price_usd,
    refuse_prefix,
    worst_case_request_usd,
)
from bard_pipeline.infra.engines.budget import QueryBudget

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too long", "max_model_len")


class EngineUnavailableError(ConnectionError):
    """The endpoint could not be reached at start-up."""


class EngineAuthError(EngineUnavailableError):
    """The endpoint refused the API key at start-up (401/403 from ``/models``)."""


# Where reasoning APIs put the chain of thought: DeepSeek and older vLLM, then newer vLLM.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length") else "stop"


def completion_text(message: Mapping[str, Any]) -> str:
    """The assistant turn of one choice, with the reasoning a reasoning API returned apart put back in front
    of the answer as a think block."""
    content = message.get("content")
    content = content if isinstance(content, str) else ""
    reasoning = next((r for f in REASONING_FIELDS if isinstance(r := message.get(f), str) and r.strip()), None)
    if reasoning is None or parse_think(content).reasoning is not None:
        return content  # no separate reasoning, or a server that also left it inline: never doubled
    if not content.strip():
        # No answer after the reasoning: max_tokens ran out while thinking (finish "length") or the model
        # stopped mid-thought. Left open, so it is judged as a run-on, not as a closed trace with no answer.
        return f"{THINK_OPEN}\n{reasoning.strip()}"
    return render_assistant(reasoning, content)


class OpenAIEngine:
    def __init__(self, cfg: OpenAIEngineConfig, budget: QueryBudget | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.base_url = cfg.base_url.rstrip("/")
        self.budget = budget
        self.backend = f"openai-compatible endpoint {self.base_url}"
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key = key or ""
        self._check_reachable()

    def _masked(self, text: str) -> str:
        """``text`` (a server's error body) with this engine's API key replaced by a placeholder naming its
        variable: the text is recorded as the row's error, and some servers quote the key they were sent."""
        return text.replace(self._key, f"[redacted: ${self.cfg.api_key_env}]") if self._key else text

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.cfg.timeout_s, connect=self.cfg.connect_timeout_s)

    def _check_reachable(self) -> None:
        url = f"{self.base_url}/models"
        try:
            status = httpx.get(
                url, headers=self._headers, timeout=httpx.Timeout(self.cfg.connect_timeout_s)
            ).status_code
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(
                f"cannot reach the OpenAI-compatible endpoint {url} ({type(exc).__name__}); check engine.base_url "
                "and that the server is up"
            ) from None
        if status in (401, 403):  # other answers (a server without /models: 404) leave it to the requests
            what, fix = self._key_source()
            raise EngineAuthError(f"the OpenAI-compatible endpoint {url} refused {what} (HTTP {status}); {fix}")

    def _key_source(self) -> tuple[str, str]:
        """Which key was sent, and how to fix it; never the key itself."""
        var = self.cfg.api_key_env
        if var is None:
            return "a request without an API key", "name the variable that holds one in engine.api_key_env"
        if not self._key:
            return f"a request without an API key (${var} is empty or unset)", f"set a valid key in ${var}"
        return f"the API key in ${var}", f"set a valid key in ${var}"

    def _price(self, prompt_tokens: float, completion_tokens: float) -> float:
        return price_usd(self.cfg.price, prompt_tokens, completion_tokens)

    def _worst_case_usd(self, request: GenerationRequest) -> float:
        # The one definition (bard_core.engine) that planners of a dollar budget use too.
        p = request.params
        return worst_case_request_usd(self.cfg.price, message_chars(request.messages), p.n, p.max_new_tokens)

    def _backoff_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), MAX_RETRY_AFTER_S)  # the server knows best, within reason
            except ValueError:
                pass
        return random.uniform(0, min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt))

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        return {
            **self.cfg.extra_body,  # first, so the engine's own fields win (the config refuses clashes too)
            "model": self.cfg.model,
            "messages": list(request.messages),
            "n": p.n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_new_tokens,
            "seed": p.seed,
            "stream": False,
        }

    async def _one(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, request: GenerationRequest
    ) -> GenerationResult:
        calls, last_problem = 0, ""
        async with gate:
            for attempt in range(self.cfg.max_retries + 1):
                reserved = self._worst_case_usd(request)
                if self.budget is not None and not self.budget.reserve(1, reserved):
                    return failed(
                        request.request_id, ErrorKind.BUDGET, "query budget exhausted: not sent", attempts=calls
                    )
                calls += 1
                retry_after = None
                try:
                    response = await client.post(f"{self.base_url}/chat/completions", json=self._payload(request))
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    last_problem = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return self._parse(request, response.json(), calls, reserved)
                    last_problem = f"HTTP {response.status_code}"
                    retry_after = response.headers.get("retry-after")
                    if response.status_code not in RETRYABLE_STATUS:
                        if self.budget is not None:
                            self.budget.settle(reserved, 0.0)
                        return self._client_error(request, response, calls)
                if self.budget is not None:
                    self.budget.settle(reserved, 0.0)
                if attempt < self.cfg.max_retries:
                    await asyncio.sleep(self._backoff_s(attempt, retry_after))
        message = f"gave up after {calls} calls to {self.base_url} (last: {last_problem})"
        return failed(request.request_id, ErrorKind.ENGINE, message, attempts=calls)

    def _client_error(self, request: GenerationRequest, response: httpx.Response, calls: int) -> GenerationResult:
        detail = self._masked(response.text)[:300]  # masked first: a cut could leave part of the key
        if response.status_code in (400, 413) and any(h in detail.lower() for h in _CONTEXT_HINTS):
            return failed(
                request.request_id,
                ErrorKind.CONTEXT_LENGTH,
                f"prompt longer than the model context: {detail}",
                attempts=calls,
            )
        return failed(request.request_id, ErrorKind.ENGINE, f"HTTP {response.status_code}: {detail}", attempts=calls)

    def _parse(self, request: GenerationRequest, body: dict[str, Any], calls: int, reserved: float) -> GenerationResult:
        usage = body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_total = int(usage.get("completion_tokens", 0))
        choices = sorted(body.get("choices", []), key=lambda c: c.get("index", 0))
        # Servers report completion tokens for the whole request; spread them over the choices.
        share = completion_total // max(len(choices), 1)
        completions = tuple(
            Completion(completion_text(c.get("message") or {}), _finish(c.get("finish_reason")), share)  # type: ignore[arg-type]
            for c in choices
        )
        cost = self._price(prompt_tokens, completion_total)
        if self.budget is not None:
            self.budget.settle(reserved, cost)
        return GenerationResult(request.request_id, completions, prompt_tokens, attempts=calls, cost_usd=cost)

    async def _run(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        gate = asyncio.Semaphore(self.cfg.max_concurrency)
        limits = httpx.Limits(max_connections=self.cfg.max_concurrency)
        async with httpx.AsyncClient(headers=self._headers, timeout=self._timeout(), limits=limits) as client:
            return list(await asyncio.gather(*(self._one(client, gate, r) for r in requests)))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        # Chat completions cannot continue an assistant turn portably: refuse those requests, serve the rest.
        served = [r for r in requests if not r.prefix]
        done = iter(asyncio.run(self._run(served)) if served else [])  # in order: ids need not be unique
        return [refuse_prefix(r, self.backend) if r.prefix else next(done) for r in requests]

    def close(self) -> None:
        return None
