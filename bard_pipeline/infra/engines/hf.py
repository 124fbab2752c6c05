"""transformers engine: batched `generate` on CPU or one GPU (the toy student's engine, and a fallback).

Prompts are rendered with the tokenizer's chat template and left-padded into batches of at most
``max_batch_size`` sequences. With ``stop_after_answer`` a sequence stops as soon as it has closed
``</think>`` and a ``\\boxed{}`` answer, instead of running on to ``max_new_tokens``. A prompt that does
not fit the model's context is rejected per request, never crashing the batch.

``SamplingParams.token_entropy`` asks for each completion's ``mean_token_entropy``. It is exact: measured
on the very scores ``generate`` samples from (after temperature, top-k, top-p), read by a stopping
criterion (``_TokenEntropy``), averaged over each sequence's own tokens. A chunk measures when any of its
requests asks, so asking never changes how requests are batched, seeded or sampled.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from bard_core.budget import THINK_CLOSE
from bard_core.config import HFEngineConfig
from bard_core.engine import Completion, ErrorKind, GenerationRequest, GenerationResult, failed
from bard_core.grading import extract_boxed
from bard_pipeline.infra.precision import inference_precision

log = logging.getLogger(__name__)


def answer_complete(text: str) -> bool:
    """True once the text closed the think block and then a ``\\boxed{...}``."""
    _, sep, tail = text.partition(THINK_CLOSE)
    return bool(sep) and extract_boxed(tail) is not None


class _StopAfterAnswer:
    """A StoppingCriteria that decodes only each sequence's newest token (cheap per step)."""

    def __init__(self, tokenizer: Any, prompt_len: int, batch: int) -> None:
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.texts = [""] * batch
        self.done = [False] * batch

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if input_ids.shape[1] > self.prompt_len:
            newest = input_ids[:, -1].tolist()
            for i, token in enumerate(newest):
                if not self.done[i]:
                    self.texts[i] += self.tokenizer.decode([token], skip_special_tokens=False)
                    self.done[i] = "}" in self.texts[i][-8:] and answer_complete(self.texts[i])
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


class _TokenEntropy:
    """A StoppingCriteria that never stops: it records, per step, the entropy (nats) of each sequence's
    sampling distribution. ``generate`` hands stopping criteria the stored scores only with
    ``output_scores``; those are the processed scores it sampled from (softmax of them is what
    ``torch.multinomial`` draws from). Each step's scores are released once measured: kept, a real vocabulary
    would hold steps x sequences x vocab floats (GBs) for nothing."""

    def __init__(self) -> None:
        self.steps: list[Any] = []  # one (sequences,) tensor per step; stacked once, so no sync per step

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        latest = scores[-1]
        probs = torch.softmax(latest.float(), dim=-1)  # filtered tokens are -inf: probability 0, entropy 0
        self.steps.append(torch.special.entr(probs).sum(dim=-1))
        latest.set_()  # free the step's scores (generate has sampled from them already; nothing reads them again)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def per_sequence(self) -> list[list[float]]:
        import torch

        if not self.steps:
            return []
        return torch.stack(self.steps, dim=1).tolist()


class HFEngine:
    def __init__(self, cfg: HFEngineConfig, model_path: str, revision: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self.model = cfg.model
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.precision = inference_precision(cfg.dtype, device)
        dtype = getattr(torch, self.precision.precision.torch_dtype_name)
        self.lm = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, dtype=dtype).to(self.device)
        self.lm.eval()
        import transformers

        self.backend = (
            f"transformers {transformers.__version__} on {self.device} (torch {torch.__version__}, "
            f"{self.precision.reason})"
        )
        self.context_tokens = int(getattr(self.lm.config, "max_position_embeddings", 0) or 1 << 30)

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        ids = self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        # A forced prefix is appended as tokens after the generation prompt: the model continues its turn.
        return ids + (self.tokenizer.encode(request.prefix, add_special_tokens=False) if request.prefix else [])

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: dict[str, GenerationResult] = {}
        fitting: list[tuple[GenerationRequest, list[int]]] = []
        for request in requests:
            ids = self._prompt_ids(request)
            if len(ids) >= self.context_tokens:
                results[request.request_id] = failed(
                    request.request_id,
                    ErrorKind.CONTEXT_LENGTH,
                    f"prompt has {len(ids)} tokens; the model's context is {self.context_tokens}",
                    len(ids),
                    attempts=1,
                )
            else:
                fitting.append((request, ids))
        for chunk in self._chunks(fitting):
            for result in self._generate_chunk(chunk):
                results[result.request_id] = result
        return [results[r.request_id] for r in requests]

    def _chunks(
        self, items: list[tuple[GenerationRequest, list[int]]]
    ) -> list[list[tuple[GenerationRequest, list[int]]]]:
        # Requests sharing sampling parameters are batched together, at most max_batch_size sequences.
        groups: dict[tuple[Any, ...], list[tuple[GenerationRequest, list[int]]]] = {}
        for item in sorted(items, key=lambda it: len(it[1])):
            p = item[0].params
            groups.setdefault((p.n, p.temperature, p.top_p, p.max_new_tokens), []).append(item)
        chunks = []
        for group in groups.values():
            per_chunk = max(1, self.cfg.max_batch_size // max(group[0][0].params.n, 1))
            chunks += [group[i : i + per_chunk] for i in range(0, len(group), per_chunk)]
        return chunks

    def _generate_chunk(self, chunk: list[tuple[GenerationRequest, list[int]]]) -> list[GenerationResult]:
        import torch
        from transformers import StoppingCriteriaList

        params = chunk[0][0].params
        width = max(len(ids) for _, ids in chunk)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in chunk], device=self.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in chunk], device=self.device)
        max_new = max(1, min(params.max_new_tokens, self.context_tokens - width))
        n = params.n
        stopper = _StopAfterAnswer(self.tokenizer, width, len(chunk) * n)
        entropy = _TokenEntropy() if any(request.params.token_entropy for request, _ in chunk) else None
        criteria: list[Any] = [stopper] if self.cfg.stop_after_answer else []
        criteria += [entropy] if entropy is not None else []
        seed = int.from_bytes(hashlib.sha256(f"{params.seed}|{chunk[0][0].request_id}".encode()).digest()[:4], "big")
        torch.manual_seed(seed)
        sampling = params.temperature > 0
        with torch.inference_mode():
            output = self.lm.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new,
                do_sample=sampling,
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None,
                num_return_sequences=n,
                pad_token_id=pad,
                eos_token_id=self.tokenizer.eos_token_id,
                stopping_criteria=StoppingCriteriaList(criteria) if criteria else None,
                # Scores reach stopping criteria only when generate stores them; _TokenEntropy frees each one.
                **({"output_scores": True, "return_dict_in_generate": True} if entropy is not None else {}),
            )
        sequences = output.sequences if entropy is not None else output
        generated = sequences[:, width:].tolist()
        entropies = entropy.per_sequence() if entropy is not None else []
        results = []
        for i, (request, ids) in enumerate(chunk):
            completions = tuple(
                self._completion(
                    generated[i * n + k],
                    max_new,
                    entropies[i * n + k] if request.params.token_entropy and entropies else None,
                )
                for k in range(n)
            )
            results.append(GenerationResult(request.request_id, completions, len(ids)))
        return results

    def _completion(self, tokens: list[int], max_new: int, step_entropy: list[float] | None = None) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        length = len(tokens)
        for index, token in enumerate(tokens):
            if token == eos or (token == pad and pad != eos):
                length = index + 1 if token == eos else index
                break
        text = self.tokenizer.decode(tokens[:length], skip_special_tokens=True)
        stopped = length < max_new or (length > 0 and tokens[length - 1] == eos) or answer_complete(text)
        # Only the sequence's own tokens: steps after its EOS (padding while others run on) are not its own.
        own = step_entropy[:length] if step_entropy is not None else []
        mean_entropy = sum(own) / len(own) if own else None
        return Completion(text, "stop" if stopped else "length", length, mean_entropy)

    def close(self) -> None:
        return None
