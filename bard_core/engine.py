"""The engine protocol: chat messages and sampling parameters in, completions with token counts out.

Every engine (the toy oracle here; vLLM, OpenAI-compatible and transformers engines in ``infra``) takes a
batch of ``GenerationRequest`` and returns one ``GenerationResult`` per request, in order. A request that
cannot be served (too long for the context, refused) comes back with ``error`` set; it never raises for
the whole batch. ``metadata`` travels with a request for engines that need structured context (the
oracle) and for accounting; real LLM engines ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, TypedDict


class EngineKind(str, Enum):
    ORACLE = "oracle"
    HF = "hf"
    VLLM = "vllm"
    OPENAI = "openai"


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    messages: Sequence[ChatMessage]
    params: SamplingParams
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The assistant turn starts with this text and the engine continues it (e.g. the truncation baseline's
    # forced "</think>"); the completion excludes it. Engines that cannot continue a turn refuse the request.
    prefix: str = ""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    completion_tokens: int


class ErrorKind(str, Enum):
    """Why a request produced no completions; each kind is counted separately in stage usage."""

    CONTEXT_LENGTH = "context_length"  # the prompt does not fit the model's context: rejected per row
    BUDGET = "budget"  # the stage's query budget was spent before this request was sent
    ENGINE = "engine"  # the backend failed (HTTP error after retries, a refused request)
    UNSUPPORTED = "unsupported"  # the engine cannot serve this kind of request (e.g. the toy oracle)


@dataclass(frozen=True)
class GenerationResult:
    request_id: str
    completions: tuple[Completion, ...]
    prompt_tokens: int
    error: str | None = None
    error_kind: ErrorKind | None = None
    attempts: int = 1  # calls made for this request (retries included)
    cost_usd: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


def failed(
    request_id: str, kind: ErrorKind, message: str, prompt_tokens: int = 0, attempts: int = 0
) -> GenerationResult:
    return GenerationResult(request_id, (), prompt_tokens, error=message, error_kind=kind, attempts=attempts)


def refuse_prefix(request: GenerationRequest, backend: str) -> GenerationResult:
    return failed(
        request.request_id,
        ErrorKind.UNSUPPORTED,
        f"{backend} cannot continue an assistant prefix; use the hf or vllm engine for this stage",
    )


class Engine(Protocol):
    """What every generation backend provides. ``model`` is recorded in artifacts (e.g. ``teacher``);
    ``backend`` says what actually ran (library and version, device or endpoint) for manifests and logs."""

    model: str
    backend: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


USAGE_FIELDS = (
    "requests",
    "calls",
    "retries",
    "failed_requests",
    "context_length_rejected",
    "budget_not_sent",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
)


@dataclass
class Usage:
    """Accounting summed over a stage: what it asked of its engine, and what that cost."""

    requests: int = 0
    calls: int = 0  # backend calls, retries included
    retries: int = 0
    failed_requests: int = 0
    context_length_rejected: int = 0
    budget_not_sent: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, results: Sequence[GenerationResult]) -> None:
        for r in results:
            self.requests += 1
            self.calls += r.attempts
            self.retries += max(r.attempts - 1, 0)
            self.failed_requests += r.error is not None
            self.context_length_rejected += r.error_kind is ErrorKind.CONTEXT_LENGTH
            self.budget_not_sent += r.error_kind is ErrorKind.BUDGET
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens
            self.cost_usd += r.cost_usd

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in USAGE_FIELDS}
