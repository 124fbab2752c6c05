"""vLLM offline engine (`vllm.LLM`), one per Ray actor; tensor parallelism inside the actor.

With ``batches_in_flight`` > 1 the engine is driven by one loop thread (``EngineLoop``) that steps vLLM's
engine for as long as any request is unfinished; ``generate`` may be called from several threads at once
(the actor pool runs that many batches concurrently per replica) and each call's requests join the running
engine between two steps and return as one batch. So the engine never drains to a batch's longest answer
before the next batch starts, and shard commit and resume, which work per batch, are unchanged. (vLLM's
``AsyncLLM`` would do the same, but vLLM 0.32 runs it only with the engine core in another process ("Running
EngineCore in asyncio without multiprocessing is not currently supported"), which the actor avoids, see
``ACTOR_ENV``; the loop steps the same in-process ``LLMEngine`` that ``LLM.generate`` steps.)

Prompts are rendered with the model's chat template to token ids here, so that the context check is
exact and no second BOS is added; a prompt that does not fit is rejected per request. Every request gets
its own seed (derived from the stage seed and the request id), so equal prompts still sample differently
and reruns are reproducible.

``SamplingParams.token_entropy`` asks vLLM for the top ``ENTROPY_TOP_LOGPROBS`` logprobs of every generated
token, and ``mean_token_entropy`` is an approximation (``top_logprobs_entropy``): vLLM returns only the
top-k of the model's raw distribution, so the entropy is that of those k tokens renormalised after the
request's temperature and top-p, not of the whole vocabulary (it is at most ln k: it underestimates a flat
distribution). Requests that do not ask get no logprobs, so their sampling and outputs are unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from bard_core.config import VLLMEngineConfig
from bard_core.engine import Completion, ErrorKind, GenerationRequest, GenerationResult, failed

# The engine core runs in the actor's own process: Ray actors are not `__main__` modules, which vLLM's
# spawned engine-core process would need.
ACTOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false"}


# Logprobs asked per token for the entropy: vLLM's default cap (max_logprobs), the most it returns unless the
# engine is configured otherwise.
ENTROPY_TOP_LOGPROBS = 20


def top_logprobs_entropy(logprobs: Iterable[float], temperature: float, top_p: float) -> float:
    """Entropy (nats) of the sampling distribution, approximated from the top-k raw logprobs of one step:
    rescaled by the temperature (1 for greedy, whose own distribution is a point mass: the model's entropy
    is reported, as the hf engine does), renormalised over the k, cut to the top-p nucleus of those."""
    scale = 1.0 / temperature if temperature > 0 else 1.0
    scaled = sorted((lp * scale for lp in logprobs), reverse=True)
    if not scaled:
        return 0.0
    total = sum(math.exp(z - scaled[0]) for z in scaled)
    probs = [math.exp(z - scaled[0]) / total for z in scaled]
    if temperature > 0 and top_p < 1.0:
        kept, mass = [], 0.0
        for q in probs:  # as the sampler does: the smallest prefix whose mass reaches top_p
            kept.append(q)
            mass += q
            if mass >= top_p:
                break
        probs = [q / mass for q in kept]
    return -sum(q * math.log(q) for q in probs if q > 0)


def _mean_entropy(
    positions: Sequence[Mapping[int, Any] | None] | None, temperature: float, top_p: float
) -> float | None:
    steps = [
        top_logprobs_entropy((lp.logprob for lp in position.values()), temperature, top_p)
        for position in positions or ()
        if position
    ]
    return sum(steps) / len(steps) if steps else None  # None: no generated token carried logprobs


def request_seed(seed: int, request_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{request_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Rendered:
    """A batch ready for vLLM: prompts (token ids) with their sampling parameters, for the accepted requests."""

    rejected: dict[str, GenerationResult]  # by request id: prompts that do not fit the context
    prompts: list[dict[str, Any]]
    params: list[Any]  # vllm.SamplingParams (vLLM is imported only inside the engine's environment)
    accepted: list[GenerationRequest]


class VLLMEngine:
    def __init__(self, cfg: VLLMEngineConfig, model_path: str, revision: str | None = None) -> None:
        for key, value in ACTOR_ENV.items():
            os.environ.setdefault(key, value)
        from vllm import LLM

        self.cfg = cfg
        self.model = cfg.model
        kwargs: dict[str, Any] = {
            "model": model_path,
            "revision": revision,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "dtype": cfg.dtype,
            "max_model_len": cfg.max_model_len,
            "enforce_eager": cfg.enforce_eager,
            "seed": 0,
            **cfg.engine_kwargs,
        }
        if cfg.tensor_parallel_size > 1:
            kwargs.setdefault("distributed_executor_backend", "mp")  # TP workers inside this actor's node
        if _has_cuda():
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        else:
            # vLLM's CPU backend fails on seeded requests split by chunked prefill ("CPU Generator does not
            # use offset"): prefill each prompt whole.
            kwargs.setdefault("enable_chunked_prefill", False)
            if cfg.max_model_len:
                kwargs.setdefault("max_num_batched_tokens", max(cfg.max_model_len, 8192))
        self.llm = LLM(**{k: v for k, v in kwargs.items() if v is not None})
        self.tokenizer = self.llm.get_tokenizer()
        self.context_tokens = int(self.llm.llm_engine.model_config.max_model_len)
        import vllm

        self.backend = f"vllm {vllm.__version__} ({'cuda' if _has_cuda() else 'cpu'}, python {sys.executable})"
        self._render_lock = threading.Lock()
        # One engine loop per replica when batches overlap; None: one blocking LLM.generate per batch.
        self.loop = EngineLoop(self.llm.llm_engine) if cfg.batches_in_flight > 1 else None

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        ids = self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        # A forced prefix is appended as tokens after the generation prompt: the model continues its turn.
        return ids + (self.tokenizer.encode(request.prefix, add_special_tokens=False) if request.prefix else [])

    def render(self, requests: Sequence[GenerationRequest]) -> Rendered:
        """Token ids and vLLM sampling parameters of the requests that fit the context; results for those that
        do not. (The benchmark feeds the same rendering to `LLM.generate` directly.)"""
        from vllm import SamplingParams

        rendered = Rendered({}, [], [], [])
        with self._render_lock:  # the tokenizer is shared by the concurrent batches
            ids_of = [(request, self._prompt_ids(request)) for request in requests]
        for request, ids in ids_of:
            room = self.context_tokens - len(ids)
            if room <= 0:
                message = f"prompt has {len(ids)} tokens; the model's context is {self.context_tokens}"
                rendered.rejected[request.request_id] = failed(
                    request.request_id, ErrorKind.CONTEXT_LENGTH, message, len(ids), 1
                )
                continue
            p = request.params
            rendered.prompts.append({"prompt_token_ids": ids})
            rendered.params.append(
                SamplingParams(
                    n=p.n,
                    temperature=p.temperature,
                    top_p=p.top_p,
                    max_tokens=min(p.max_new_tokens, room),
                    seed=request_seed(p.seed, request.request_id),
                    # Only when asked: the request is otherwise exactly what it was before entropy existed.
                    **({"logprobs": ENTROPY_TOP_LOGPROBS} if p.token_entropy else {}),
                )
            )
            rendered.accepted.append(request)
        return rendered

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Results in request order; thread-safe when the engine loop runs (``batches_in_flight`` > 1)."""
        rendered = self.render(requests)
        results = dict(rendered.rejected)
        if rendered.prompts:
            if self.loop is not None:
                outputs = [future.result() for future in self.loop.submit(rendered.prompts, rendered.params)]
            else:
                outputs = self.llm.generate(rendered.prompts, rendered.params, use_tqdm=False)
            for request, output in zip(rendered.accepted, outputs, strict=True):
                p = request.params
                completions = tuple(
                    Completion(
                        o.text,
                        "length" if o.finish_reason == "length" else "stop",
                        len(o.token_ids),
                        _mean_entropy(o.logprobs, p.temperature, p.top_p) if p.token_entropy else None,
                    )
                    for o in output.outputs
                )
                results[request.request_id] = GenerationResult(
                    request.request_id, completions, len(output.prompt_token_ids)
                )
        return [results[r.request_id] for r in requests]

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


class EngineLoop:
    """Steps one vLLM ``LLMEngine`` on a background thread while any request is unfinished; ``submit`` (from
    any thread) queues requests that join the engine before its next step, and returns one future per request
    that resolves to its final ``RequestOutput``.

    Only the loop thread touches the engine (vLLM's engine is not thread-safe). A request vLLM refuses fails
    its own future; an engine failure fails every outstanding future and every later ``submit``, so no batch
    waits forever.
    """

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._ids = itertools.count()  # our own request ids: equal ids from two batches must not collide
        self._queued: list[tuple[str, dict[str, Any], Any, Future[Any]]] = []
        self._running: dict[str, Future[Any]] = {}  # loop thread only
        self._wake = threading.Condition()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vllm-engine-loop", daemon=True)
        self._thread.start()

    def submit(self, prompts: Sequence[dict[str, Any]], params: Sequence[Any]) -> list[Future[Any]]:
        futures: list[Future[Any]] = [Future() for _ in prompts]
        with self._wake:
            if self._error is not None or self._stopping:
                raise RuntimeError(f"the vLLM engine loop has stopped: {self._error or 'closed'}")
            for prompt, param, future in zip(prompts, params, futures, strict=True):
                self._queued.append((f"q{next(self._ids)}", prompt, param, future))
            self._wake.notify()
        return futures

    def close(self, timeout_s: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        from vllm.sampling_params import RequestOutputKind

        try:
            while True:
                with self._wake:
                    while not (self._queued or self._running or self._stopping):
                        self._wake.wait()
                    if self._stopping:
                        if self._queued or self._running:
                            raise RuntimeError("the vLLM engine was closed with requests outstanding")
                        return
                    queued, self._queued = self._queued, []
                for request_id, prompt, param, future in queued:
                    param.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM.generate: only the final output
                    try:
                        self._engine.add_request(request_id, prompt, param)
                    except Exception as exc:  # a refused request fails its batch, not the engine
                        future.set_exception(exc)
                        continue
                    self._running[request_id] = future
                if self._running and not self._engine.has_unfinished_requests():
                    # Stepping an idle engine would spin forever: fail the requests it lost instead.
                    raise RuntimeError(f"vLLM has no unfinished requests but {len(self._running)} never finished")
                for output in self._engine.step():
                    if output.finished and (future := self._running.pop(output.request_id, None)) is not None:
                        future.set_result(output)
        except BaseException as exc:
            with self._wake:
                self._error = exc
                outstanding = [future for *_, future in self._queued] + list(self._running.values())
                self._queued, self._running = [], {}
            for future in outstanding:
                future.set_exception(exc)


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False
