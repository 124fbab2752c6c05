"""vLLM offline engine (`vllm.LLM`), one per Ray actor; tensor parallelism inside the actor.

Prompts are rendered with the model's chat template to token ids here, so that the context check is
exact and no second BOS is added; a prompt that does not fit is rejected per request. Every request gets
its own seed (derived from the stage seed and the request id), so equal prompts still sample differently
and reruns are reproducible.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from bard_core.config import VLLMEngineConfig
from bard_core.engine import Completion, ErrorKind, GenerationRequest, GenerationResult, failed

# The engine core runs in the actor's own process: Ray actors are not `__main__` modules, which vLLM's
# spawned engine-core process would need.
ACTOR_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false"}


def request_seed(seed: int, request_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{request_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


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

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        ids = self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        # A forced prefix is appended as tokens after the generation prompt: the model continues its turn.
        return ids + (self.tokenizer.encode(request.prefix, add_special_tokens=False) if request.prefix else [])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        from vllm import SamplingParams

        results: dict[str, GenerationResult] = {}
        prompts, params, accepted = [], [], []
        for request in requests:
            ids = self._prompt_ids(request)
            room = self.context_tokens - len(ids)
            if room <= 0:
                message = f"prompt has {len(ids)} tokens; the model's context is {self.context_tokens}"
                results[request.request_id] = failed(request.request_id, ErrorKind.CONTEXT_LENGTH, message, len(ids), 1)
                continue
            p = request.params
            prompts.append({"prompt_token_ids": ids})
            params.append(
                SamplingParams(
                    n=p.n,
                    temperature=p.temperature,
                    top_p=p.top_p,
                    max_tokens=min(p.max_new_tokens, room),
                    seed=request_seed(p.seed, request.request_id),
                )
            )
            accepted.append(request)
        if prompts:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for request, output in zip(accepted, outputs, strict=True):
                completions = tuple(
                    Completion(o.text, "length" if o.finish_reason == "length" else "stop", len(o.token_ids))
                    for o in output.outputs
                )
                results[request.request_id] = GenerationResult(
                    request.request_id, completions, len(output.prompt_token_ids)
                )
        return [results[r.request_id] for r in requests]

    def close(self) -> None:
        return None


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False
