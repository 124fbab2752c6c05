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


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason
    completion_tokens: int


@dataclass(frozen=True)
class GenerationResult:
    request_id: str
    completions: tuple[Completion, ...]
    prompt_tokens: int
    error: str | None = None

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


class Engine(Protocol):
    """What every generation backend provides. ``model`` is recorded in artifacts (e.g. ``teacher``)."""

    model: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


@dataclass
class Usage:
    """Accounting summed over a stage: what it asked of its engine."""

    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, results: Sequence[GenerationResult]) -> None:
        for r in results:
            self.requests += 1
            self.failed_requests += r.error is not None
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens

    def merge(self, other: Usage) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
