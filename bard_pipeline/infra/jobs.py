"""Batch jobs run by engine actors: thin adapters from Arrow rows to ``bard_core`` sampling, compression
and evaluation.

A ``*JobSpec`` is small and picklable (it travels to the actor); calling it builds the job inside
the actor, where the engine is loaded and the student tokenizer fetched from the store.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core import schemas
from bard_core.bridge.scoring import score_batch
from bard_core.budget import BudgetSpec, HFTokenCounter
from bard_core.compression import CompressionJob, CompressorPrompts, compress_batch
from bard_core.config import EngineConfig
from bard_core.engine import Engine, SamplingParams, Usage
from bard_core.evaluation import EvalSettings, evaluate_batch
from bard_core.prompting import load_prompt
from bard_core.sampling import TeacherPrompt, sample_batch
from bard_core.selection import GoldSelection
from bard_pipeline.infra.engines import EngineRuntime, build_engine
from bard_pipeline.infra.local_cache import resolve_location
from bard_pipeline.infra.models import MODEL_PREFIX
from bard_pipeline.infra.tokenizers import load_counter

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
    author: str = "teacher"  # whose traces these are: the teacher's, or BRIDGE's assistant's (`amplify`)

    def __call__(self) -> SampleJob:
        return SampleJob(self)


class _TeacherPromptJob:
    """What the jobs that put the teacher's prompt to an engine share (the teacher's `sample`, and BRIDGE's
    assistant scoring it in `select` and answering it in `amplify`): the engine, the counter, the prompt."""

    def __init__(self, spec: SampleJobSpec | ScoreJobSpec) -> None:
        self.engine, self.counter = spec.worker.build()
        self.backend = self.engine.backend
        system = load_prompt(spec.system_prompt) if spec.system_prompt else None
        self.prompt = TeacherPrompt(load_prompt(spec.user_prompt), system)


class SampleJob(_TeacherPromptJob):
    schema = schemas.TRACES

    def __init__(self, spec: SampleJobSpec) -> None:
        super().__init__(spec)
        self.spec = spec

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        traces, usage = sample_batch(
            self.engine, self.counter, rows, self.prompt, self.spec.params, self.spec.selection, self.spec.author
        )
        by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for trace in traces:
            by_problem[trace["problem_id"]].append(trace)
        return [by_problem[row["problem_id"]] for row in rows], usage


@dataclass(frozen=True)
class ScoreJobSpec:
    """BRIDGE's `select`: k samples of the teacher assistant per problem, scored (``bard_core.bridge.scoring``)."""

    worker: EngineWorker
    user_prompt: str
    system_prompt: str | None
    params: SamplingParams

    def __call__(self) -> ScoreJob:
        return ScoreJob(self)


class ScoreJob(_TeacherPromptJob):
    schema = schemas.SELECTION_SCORES

    def __init__(self, spec: ScoreJobSpec) -> None:
        super().__init__(spec)
        self.spec = spec

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        scores, usage = score_batch(self.engine, self.counter, rows, self.prompt, self.spec.params)
        return [[score] for score in scores], usage


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
                grader=row["grader"],
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
    """Evaluation of one checkpoint (see ``bard_core.evaluation.evaluate_batch``)."""

    worker: EngineWorker
    settings: EvalSettings

    def __call__(self) -> EvalJob:
        return EvalJob(self)


class EvalJob:
    schema = schemas.GENERATIONS

    def __init__(self, spec: EvalJobSpec) -> None:
        self.spec = spec
        self.engine, self.counter = spec.worker.build()
        self.backend = self.engine.backend

    def process(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[dict[str, Any]]], Usage]:
        return evaluate_batch(self.engine, self.counter, rows, self.spec.settings)
