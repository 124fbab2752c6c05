"""Engine configs, one per backend, selected by `kind` (resolved to engines in bard_pipeline/infra/engines)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, field_validator

from bard_core.config.base import EXECUTION, OMIT_DEFAULT, Section


class OracleEngineConfig(Section):
    kind: Literal["oracle"] = "oracle"
    """Engine backend; 'oracle' is the toy world's teacher and compressor."""
    model: str = "toy-oracle"
    """Name recorded as the teacher/compressor in artifacts."""
    error_rate: float = Field(default=0.15, ge=0, le=1)
    """Probability that a teacher sample slips on one step (so grading matters)."""
    detour_rate: float = Field(default=1.0, ge=0)
    """How often the teacher adds self-checks and detours (redundancy to compress away)."""
    miss_sigma: float = Field(default=0.35, ge=0)
    """Spread of the compressor's length estimate: larger misses the budget more often."""
    answer_drop_rate: float = Field(default=0.03, ge=0, le=1)
    """Probability that a compression loses the answer (so answer verification matters)."""
    price: PriceConfig | None = Field(default=None, json_schema_extra=OMIT_DEFAULT)
    """Token prices, to play a priced teacher API: each result then costs its oracle-counted prompt and
    completion tokens at these prices (cost_usd in usage and manifests, for dollar budgets). None: free."""


class HFEngineConfig(Section):
    kind: Literal["hf"] = "hf"
    """transformers `generate`: CPU or a single GPU; the toy student's engine and a fallback."""
    model: str
    """A name from the run's `models` catalog, a local folder, or a Hugging Face model id."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype. 'auto': bfloat16 on a GPU that supports it or a CPU with native bf16 (AMX, AVX512-BF16),
    else float32 (an AVX2-only CPU emulates bf16, several times slower); see bard_core/precision.py."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:1' or 'auto' (CUDA when available)."""
    max_batch_size: int = Field(default=16, ge=1)
    """Sequences (prompts x samples) generated together."""
    threads: int | None = Field(default=None, ge=1)
    """torch CPU threads per replica (None: what Ray grants the actor)."""
    stop_after_answer: bool = True
    """Stop a sequence once it closed </think> and a \\boxed{} answer, instead of running to max tokens."""


class VLLMEngineConfig(Section):
    kind: Literal["vllm"] = "vllm"
    """vLLM offline inference (`vllm.LLM`) inside each engine replica."""
    model: str
    """A name from the run's `models` catalog, a local folder, or a Hugging Face model id."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per replica (tensor parallelism); each replica asks Ray for this many GPUs."""
    dtype: str = "auto"
    """Weights dtype ('auto', 'bfloat16', 'float16', 'float32'; use float32 on AVX2 CPUs)."""
    max_model_len: int | None = Field(default=None, ge=16)
    """Context length; prompts longer than it are rejected per row. None: the model's own."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """Share of each GPU's memory vLLM may take."""
    enforce_eager: bool = False
    """Skip CUDA graphs / torch.compile (faster start, slower decode)."""
    python: str | None = Field(default=None, json_schema_extra=EXECUTION)
    """Python of a separate environment that has vLLM (e.g. .venv-vllm/bin/python); Ray starts the engine
    replicas with it. None: vLLM is installed in the driver's environment (a GPU worker image). Not part of
    the fingerprint: it says where vLLM runs, not what it generates."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for `vllm.LLM` (e.g. {swap_space: 8})."""
    batches_in_flight: int = Field(default=4, ge=1, json_schema_extra=EXECUTION)
    """Batches each replica works on at once. Above 1, one vLLM engine loop runs continuously in the replica
    and every batch's requests join it as they arrive, so a new batch's prompts fill the slots that the
    previous batch's short answers free (no idling on a batch's longest answer); results still return per
    batch. 1: one blocking `LLM.generate` per batch. Not part of the fingerprint: requests are seeded one by
    one, so this changes scheduling, not what is sampled."""


class PriceConfig(Section):
    prompt_usd_per_mtok: float = Field(ge=0)
    """Price of a million prompt tokens, in US dollars."""
    completion_usd_per_mtok: float = Field(ge=0)
    """Price of a million completion tokens, in US dollars."""


# Request-body fields the OpenAI engine sets itself, with where each comes from: extra_body may not override
# them (the query and dollar budgets count on n and max_tokens; the response parser needs stream off).
ENGINE_BODY_FIELDS: dict[str, str] = {
    "model": "engine.model",
    "messages": "the stage's prompts",
    "n": "the stage's sample count (e.g. sample.n_samples)",
    "max_tokens": "sampling.max_new_tokens",
    "max_completion_tokens": "sampling.max_new_tokens (sent as max_tokens)",
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "seed": "sampling.seed",
    "stream": "the engine (responses are read whole)",
}


class OpenAIEngineConfig(Section):
    kind: Literal["openai"] = "openai"
    """An OpenAI-compatible chat-completions endpoint (vLLM serve, SGLang, a hosted API)."""
    model: str
    """Model name the endpoint serves."""
    base_url: str
    """Endpoint root, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable that holds the API key (the key itself never goes in a config)."""
    max_concurrency: int = Field(default=16, ge=1)
    """Requests in flight per replica."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per-request timeout; a timed-out request is retried."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Connection timeout, also used by the start-up reachability check (fail fast)."""
    max_retries: int = Field(default=6, ge=0)
    """Retries per request on 429, 5xx, timeouts and dropped connections."""
    backoff_base_s: float = Field(default=0.5, gt=0)
    """First backoff; each retry doubles it, with full jitter, capped by backoff_max_s. A server's
    Retry-After header takes precedence."""
    backoff_max_s: float = Field(default=30.0, gt=0)
    """Longest wait between retries."""
    max_requests: int | None = Field(default=None, ge=0)
    """Hard query budget: HTTP calls (retries included) the stage may make; the rest is recorded as not sampled."""
    max_cost_usd: float | None = Field(default=None, ge=0)
    """Hard spending budget for the stage (needs `price`); requests are reserved at their worst-case cost."""
    price: PriceConfig | None = None
    """Token prices, for the cost in manifests and the dollar budget."""
    extra_body: dict[str, JsonValue] = Field(default={}, json_schema_extra=OMIT_DEFAULT)
    """Extra JSON fields merged into every chat-completions request body, for what the endpoint takes beyond
    the OpenAI API, e.g. {reasoning_effort: high} or, for `vllm serve`, {chat_template_kwargs:
    {enable_thinking: true}}. It cannot set what the engine sets itself (model, messages, n, max_tokens, the
    sampling parameters, stream). Part of the fingerprint when set: it changes what the teacher writes."""

    @field_validator("extra_body")
    @classmethod
    def _engine_owns_its_fields(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for key in value:
            if key in ENGINE_BODY_FIELDS:
                raise ValueError(
                    f"extra_body may not set {key!r}: the engine sets it from {ENGINE_BODY_FIELDS[key]}; "
                    f"remove {key!r} from engine.extra_body"
                )
        return value


EngineConfig = Annotated[
    OracleEngineConfig | HFEngineConfig | VLLMEngineConfig | OpenAIEngineConfig, Field(discriminator="kind")
]
