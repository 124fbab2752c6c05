"""Batch jobs run by engine actors: thin adapters from Arrow rows to ``bard_core`` sampling/compression.

A ``*JobSpec`` is small and picklable (it travels to the actor); calling it builds the job inside
the actor, where the engine is loaded and the student tokenizer fetched from the store.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core import schemas
from bard_core.budget import THINK_OPEN, BudgetSpec, HFTokenCounter, parse_think
from bard_core.compression import CompressionJob, CompressorPrompts, compress_batch
from bard_core.config import EngineConfig
from bard_core.engine import Engine, GenerationRequest, GenerationResult, SamplingParams, Usage
from bard_core.prompting import load_prompt
from bard_core.sampling import TeacherPrompt, sample_batch
from bard_core.selection import GoldSelection
from infra.engines import EngineRuntime, build_engine
from infra.local_cache import resolve_location
from infra.models import MODEL_PREFIX
from infra.tokenizers import load_counter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineWorker:
    """What every engine actor needs: the engine config, where its model and the student tokenizer are,
    and the stage's query-budget actor (if the stage has a budget)."""

    engine: EngineConfig
    store_root: str
    endpoint_url: str | None
    tokenizer_ref: str
    model_location: str | None = None  # "store:model/<fp>", a folder, or a hub id
    model_revision: str | None = None
    budget_actor: Any = None  # a Ray actor handle (BudgetLedger), shared by every replica

    def build(self) -> tuple[Engine, HFTokenCounter]:
        counter = load_counter(self.store_root, self.endpoint_url, self.tokenizer_ref)
        model_path = None
        if self.model_location is not None:
            model_path = resolve_location(self.model_location, self.store_root, self.endpoint_url, MODEL_PREFIX)
        runtime = EngineRuntime(model_path, self.model_revision, self.budget_actor)
        engine = build_engine(self.engine, runtime)
        log.info("engine ready: %s, model %s (%s)", engine.backend, engine.model, model_path or "no weights")
        return engine, counter


@dataclass(frozen=True)
class SampleJobSpec:
    worker: EngineWorker
    user_prompt: str
    system_prompt: str | None
    params: SamplingParams
    selection: GoldSelection

    def __call__(self) -> SampleJob:
        return SampleJob(self)


class SampleJob:
    schema = schemas.TRACES

    def __init__(self, spec: SampleJobSpec) -> None:
        self.spec = spec
        self.engine, self.counter = spec.worker.build()
        self.backend = self.engine.backend
        system = load_prompt(spec.system_prompt) if spec.system_prompt else None
        self.prompt = TeacherPrompt(load_prompt(spec.user_prompt), system)

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        traces, usage = sample_batch(
            self.engine, self.counter, rows, self.prompt, self.spec.params, self.spec.selection
        )
        by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for trace in traces:
            by_problem[trace["problem_id"]].append(trace)
        return [by_problem[row["problem_id"]] for row in rows], usage


@dataclass(frozen=True)
class CompressJobSpec:
    worker: EngineWorker
    prompts: tuple[str, str, str]  # system, user, feedback prompt refs
    budget: BudgetSpec
    params: SamplingParams
    max_attempts: int

    def __call__(self) -> CompressJob:
        return CompressJob(self)


class CompressJob:
    schema = schemas.TIERS

    def __init__(self, spec: CompressJobSpec) -> None:
        self.spec = spec
        self.engine, self.counter = spec.worker.build()
        self.backend = self.engine.backend
        system, user, feedback = (load_prompt(ref) for ref in spec.prompts)
        self.prompts = CompressorPrompts(system, user, feedback)

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        jobs = [
            CompressionJob(
                problem_id=row["problem_id"],
                problem=row["problem"],
                answer=row["answer"],
                meta=json.loads(row["meta"]),
                reasoning=row["reasoning"],
                final=row["final"],
                source_tokens=row["source_tokens"],
                budget_tokens=row["budget_tokens"],
            )
            for row in rows
        ]
        tiers, usage = compress_batch(
            self.engine, self.counter, jobs, self.prompts, self.spec.budget, self.spec.params, self.spec.max_attempts
        )
        return [[tier] for tier in tiers], usage


@dataclass(frozen=True)
class EvalJobSpec:
    """Evaluation of one checkpoint: budgeted requests sample k outputs at their budget; truncation
    requests sample k unconstrained outputs, then cut each at every budget of the grid and force an answer."""

    worker: EngineWorker
    label: str
    budget: BudgetSpec
    budgets_tokens: tuple[int, ...]
    samples_per_problem: int
    temperature: float
    top_p: float
    seed: int
    max_new_tokens_factor: float
    answer_tokens: int
    truncation_max_new_tokens: int
    truncation_answer_tokens: int

    def __call__(self) -> EvalJob:
        return EvalJob(self)


class EvalJob:
    schema = schemas.GENERATIONS

    def __init__(self, spec: EvalJobSpec) -> None:
        self.spec = spec
        self.engine, self.counter = spec.worker.build()
        self.backend = self.engine.backend

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        from bard_core.evaluation import MODE_BUDGET

        s, usage = self.spec, Usage()
        requests = []
        for row in rows:
            if row["mode"] == MODE_BUDGET:
                max_new = math.ceil(row["budget_tokens"] * s.max_new_tokens_factor) + s.answer_tokens
            else:
                max_new = s.truncation_max_new_tokens
            params = SamplingParams(s.samples_per_problem, s.temperature, s.top_p, max_new, s.seed)
            requests.append(GenerationRequest(_eval_id(row), row["prompt"], params))
        results = self.engine.generate(requests)
        usage.add(results)
        out: list[list[dict[str, Any]]] = []
        forced: list[tuple[int, dict[str, Any], GenerationRequest]] = []
        for index, (row, result) in enumerate(zip(rows, results, strict=True)):
            generated = self._rows(row, result)
            if row["mode"] == MODE_BUDGET:
                out.append(generated)
                continue
            kept, cuts = self._truncations(row, generated)
            out.append(kept)
            forced += [(index, cut, request) for cut, request in cuts]
        if forced:
            answers = self.engine.generate([request for _, _, request in forced])
            usage.add(answers)
            for (index, cut, request), answer in zip(forced, answers, strict=True):
                out[index].append(self._finish_cut(rows[index], cut, request.prefix, answer))
        return out, usage

    def _base(self, row: Mapping[str, Any], mode: str, budget: int, sample_idx: int) -> dict[str, Any]:
        return {
            "model": self.spec.label,
            "benchmark": row["benchmark"],
            "problem_id": row["problem_id"],
            "mode": mode,
            "budget_tokens": budget,
            "sample_idx": sample_idx,
        }

    def _scored(self, row: Mapping[str, Any], text: str, reasoning_tokens: int) -> dict[str, Any]:
        from bard_core.evaluation import score_generation

        result = score_generation(text, row["answer"], row["grader"], json.loads(row["meta"]))
        return {
            "text": text,
            "reasoning_tokens": reasoning_tokens,
            "closed": result.closed,
            "unparsed": result.unparsed,
            "pred_answer": result.pred_answer,
            "correct": result.correct,
            "error": None,
        }

    def _reasoning_tokens(self, text: str) -> int:
        # An output that never closes its think block is counted at its generated length.
        think = parse_think(text)
        return self.counter.count(think.reasoning if think.reasoning is not None else text)

    def _rows(self, row: Mapping[str, Any], result: GenerationResult) -> list[dict[str, Any]]:
        from bard_core.evaluation import MODE_BUDGET, MODE_UNCONSTRAINED

        mode = MODE_BUDGET if row["mode"] == MODE_BUDGET else MODE_UNCONSTRAINED
        if result.error is not None:  # e.g. a prompt longer than the context: one row, counted as an error
            failed_row = {"text": "", "reasoning_tokens": 0, "completion_tokens": 0, "finish_reason": "error"}
            flags = {"closed": False, "unparsed": False, "pred_answer": None, "correct": False}
            return [{**self._base(row, mode, row["budget_tokens"], 0), **failed_row, **flags, "error": result.error}]
        return [
            {
                **self._base(row, mode, row["budget_tokens"], k),
                **self._scored(row, c.text, self._reasoning_tokens(c.text)),
                "completion_tokens": c.completion_tokens,
                "finish_reason": c.finish_reason,
            }
            for k, c in enumerate(result.completions)
        ]

    def _truncations(
        self, row: Mapping[str, Any], generated: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], GenerationRequest]]]:
        """Unconstrained rows, plus per budget: the row itself when it already fits (closed, within budget),
        else a request that continues the reasoning cut at the budget with a forced ``</think>``."""
        from bard_core.evaluation import MODE_TRUNCATED, truncation_prefix

        kept, cuts = list(generated), []
        params = SamplingParams(1, 0.0, 1.0, self.spec.truncation_answer_tokens, self.spec.seed)
        tokenizer = self.counter.tokenizer
        for gen in generated:
            if gen["error"] is not None:
                continue
            for budget in self.spec.budgets_tokens:
                base = self._base(row, MODE_TRUNCATED, budget, gen["sample_idx"])
                if gen["closed"] and gen["reasoning_tokens"] <= budget:
                    kept.append({**gen, **base})
                    continue
                think = parse_think(gen["text"])
                reasoning = think.reasoning if think.reasoning is not None else gen["text"]
                reasoning = reasoning.removeprefix(THINK_OPEN)
                ids = tokenizer.encode(reasoning.strip(), add_special_tokens=False)
                prefix = truncation_prefix(ids, budget, tokenizer.decode)
                request_id = f"{_eval_id(row)}|cut{budget}|{gen['sample_idx']}"
                cuts.append(
                    (
                        {**base, "reasoning_tokens": min(len(ids), budget)},
                        GenerationRequest(request_id, row["prompt"], params, prefix=prefix),
                    )
                )
        return kept, cuts

    def _finish_cut(
        self, row: Mapping[str, Any], cut: dict[str, Any], prefix: str, answer: GenerationResult
    ) -> dict[str, Any]:
        if answer.error is not None:
            flags = {"closed": False, "unparsed": False, "pred_answer": None, "correct": False}
            return {
                **cut,
                "text": prefix,
                **flags,
                "completion_tokens": 0,
                "finish_reason": "error",
                "error": answer.error,
            }
        completion = answer.completions[0]
        scored = self._scored(row, prefix + completion.text, cut["reasoning_tokens"])
        return {
            **cut,
            **scored,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason,
        }


def _eval_id(row: Mapping[str, Any]) -> str:
    return f"{row['benchmark']}|{row['problem_id']}|{row['mode']}|{row['budget_tokens']}"
