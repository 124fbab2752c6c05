"""The engine protocol: chat messages and sampling parameters in, completions with token counts out.

Every engine (the toy oracle here; vLLM, OpenAI-compatible and transformers engines in ``infra``) takes a
batch of ``GenerationRequest`` and returns one ``GenerationResult`` per request, in order. A request that
cannot be served (too long for the context, refused) comes back with ``error`` set; it never raises for
the whole batch. ``metadata`` travels with a request for engines that need structured context (the
oracle) and for accounting; real LLM engines ignore it.

Prices: ``price_usd`` is what a call cost, ``worst_case_request_usd`` what it may cost at most before it is
sent (the reservation of the query budget, ``bard_pipeline/infra/engines/budget.py``); every engine that
charges uses these two, so a dollar budget planned here is the one the ledger enforces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

if TYPE_CHECKING:  # type only: bard_core.config never needs the engine protocol, and must not import it back
    from bard_core.config.engines import PriceConfig


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
    # Ask for Completion.mean_token_entropy. Off by default: engines then run exactly as before (the same
    # batches, sampling and outputs); on, the samples are still the same, only measured.
    token_entropy: bool = False


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
    # Mean over the completion's generated tokens (its own, not padding; the closing EOS included, as in
    # completion_tokens) of the entropy, in nats, of the distribution the engine drew each token from: the
    # model's next-token distribution after temperature and top-p (and any other sampling filter the
    # backend applies). At temperature 0 that distribution is a point mass, so greedy decoding reports the
    # entropy of the model's own distribution (temperature 1) instead: the difficulty signal survives.
    # None when not requested (SamplingParams.token_entropy), when the backend cannot measure it (the
    # OpenAI-compatible engine, the toy oracle) or for an empty completion. The hf engine's value is exact;
    # vLLM's is an approximation over the top-20 logprobs (see infra/engines/vllm.py).
    mean_token_entropy: float | None = None


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


def price_usd(price: PriceConfig | None, prompt_tokens: float, completion_tokens: float) -> float:
    """Dollars for ``prompt_tokens`` and ``completion_tokens`` at ``price`` (per million tokens); 0 unpriced."""
    if price is None:
        return 0.0
    return (prompt_tokens * price.prompt_usd_per_mtok + completion_tokens * price.completion_usd_per_mtok) / 1e6


def message_chars(messages: Sequence[ChatMessage]) -> int:
    """Characters of a request's messages: an upper bound of its prompt tokens for real tokenizers (a token
    spans at least one character), which makes ``worst_case_request_usd`` a bound without a tokenizer."""
    return sum(len(m["content"]) for m in messages)


def worst_case_request_usd(price: PriceConfig | None, prompt_chars: int, n: int, max_new_tokens: int) -> float:
    """The most one call may cost: every prompt character a prompt token, every one of the ``n`` samples
    running to ``max_new_tokens``. The query budget reserves this before a call is sent, so a dollar
    budget is never exceeded; planning with it (e.g. how many problems a teacher budget buys) is safe."""
    return price_usd(price, prompt_chars, n * max_new_tokens)


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
