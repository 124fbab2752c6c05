"""What every stage task shares: fingerprint, skip-if-committed, write, commit, record, publish.

A stage is described by a ``StageSpec`` (name, logic version, fingerprinted config, prompt files,
input artifacts) and a ``build`` function that writes its files. ``execute`` turns those into an
``ArtifactRef``: it skips the work when the fingerprint is already committed, records the outcome
in the run manifest and publishes a summary to the Prefect UI. Config sections enter a spec as their
``fingerprint_dump``, so execution-only fields (marked in ``bard_core.config``) never reach a fingerprint.
With ``ray.job_address`` set, the stages of ``ray.job_stages`` are built by a Ray Job on that cluster
instead of in this process (``bard_pipeline.tasks.stage_job``); skipping and recording stay here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from bard_core.config import RayConfig, RunConfig, Section
from bard_core.fingerprint import fingerprint
from bard_core.manifest import Manifest
from bard_core.prompting import load_prompt
from bard_pipeline.infra.faults import maybe_fail
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore, utc_now
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.reporting import stage_markdown

STAGES = (
    "tokenizer",
    "model",
    "ingest",
    "select",
    "sample",
    "assistant",
    "amplify",
    "compress",
    "materialize",
    "sft",
    "rl",
    "evaluate",
)  # fmt: skip  (select, assistant and amplify are BRIDGE's, run when `bridge.enabled`)


class StageNotSelectedError(RuntimeError):
    """An input stage was excluded by ``--stages`` and has no artifact to reuse."""


def logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tasks")


@dataclass
class RunRecord:
    """The run manifest: which artifact each stage produced or reused, in one flow run."""

    run_id: str
    name: str
    recipe: str | None
    overrides: list[str]
    config: dict[str, Any]
    started_at: str = field(default_factory=utc_now)
    status: str = "running"
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "recipe": self.recipe,
            "overrides": self.overrides,
            "config": self.config,
            "started_at": self.started_at,
            "status": self.status,
            "stages": self.stages,
        }


@dataclass
class StageContext:
    """Everything a stage task needs besides its inputs; one per flow run."""

    cfg: RunConfig
    store: ArtifactStore
    ray: RaySession
    run: RunRecord
    selected: frozenset[str] = frozenset(STAGES)
    reuse: Mapping[str, str] = field(default_factory=dict)  # stage -> artifact key from an earlier run
    until: str | None = None  # the last stage to run
    records_run: bool = True  # False inside a Ray job (stage_job): the flow, not the job, keeps the run manifest

    def continues_after(self, stage: str) -> bool:
        return self.until is None or STAGES.index(self.until) > STAGES.index(stage)

    def record(
        self,
        stage: str,
        ref: ArtifactRef,
        status: str,
        manifest: Manifest | None,
        wall_s: float,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not self.records_run:
            return
        self.run.stages[stage] = {
            "artifact": ref.key,
            "uri": self.store.uri(ref),
            "status": status,
            "wall_s": round(wall_s, 3),
            "rows": manifest.rows if manifest else {},
            **(extra or {}),  # e.g. the Ray job that built it: ids, driver node, duration
        }
        self.store.write_run(self.run.run_id, self.run.as_dict())


def fingerprint_config(value: Any) -> Any:
    """``value`` as fingerprint JSON: every config section in it (at any depth) as its ``fingerprint_dump``."""
    if isinstance(value, Section):
        return value.fingerprint_dump()
    if isinstance(value, Mapping):
        return {key: fingerprint_config(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fingerprint_config(item) for item in value]
    return value


def stage_config(section: Section, **decisive: Any) -> dict[str, Any]:
    """A stage's fingerprinted config: its section without execution-only fields, plus whatever else
    decides its output (``engine=`` identity, ``budget=`` section, ...), which replaces same-named fields."""
    return {**section.fingerprint_dump(), **fingerprint_config(decisive)}


@dataclass(frozen=True)
class StageSpec:
    name: str
    version: int
    config: Mapping[str, Any]  # JSON values or config sections; normalized by `fingerprint_config`
    prompts: tuple[str, ...] = ()
    inputs: Mapping[str, ArtifactRef] = field(default_factory=dict)
    label: str | None = None  # run-manifest entry when a stage runs more than once per run ("model:smollm2")

    def __post_init__(self) -> None:
        # Here rather than in each task: a section handed over whole cannot bring its resources along.
        object.__setattr__(self, "config", fingerprint_config(self.config))

    def ref(self) -> ArtifactRef:
        prompt_hashes = {ref: load_prompt(ref).sha256 for ref in self.prompts}
        inputs = {name: ref.fingerprint for name, ref in self.inputs.items()}
        return ArtifactRef(self.name, fingerprint(self.name, self.version, self.config, prompt_hashes, inputs))


@dataclass
class StageResult:
    stats: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)


def execute(ctx: StageContext, spec: StageSpec, build: Callable[[ArtifactWriter], StageResult]) -> ArtifactRef:
    log = logger()
    t0 = time.perf_counter()
    key = spec.label or spec.name
    if spec.name not in ctx.selected and key in ctx.reuse:
        ref = ArtifactRef.parse(ctx.reuse[key])
        manifest = ctx.store.manifest(ref)
        log.info("%s: reusing %s from the earlier run", spec.name, ctx.store.uri(ref))
        return _finish(ctx, spec.label or spec.name, ref, "reused", manifest, t0)
    ref = spec.ref()
    if ctx.store.exists(ref):
        manifest = ctx.store.manifest(ref)
        log.info("%s: skipped, artifact %s already committed", spec.name, ctx.store.uri(ref))
        return _finish(ctx, spec.label or spec.name, ref, "skipped", manifest, t0)
    if spec.name not in ctx.selected:
        raise StageNotSelectedError(
            f"stage {spec.name!r} is not in --stages and its artifact {ref.key} does not exist in {ctx.store.root}; "
            f"add {spec.name} to --stages, or pass --from-run with a run that produced it"
        )
    if runs_as_job(ctx.cfg.ray, spec.name):
        # Lazily: the job entrypoint imports the stage tasks, which import this module.
        from bard_pipeline.tasks.stage_job import run_as_job

        manifest, job = run_as_job(ctx, spec.name, ref)
        return _finish(ctx, key, ref, "executed", manifest, t0, {"ray_job": job})
    log.info("%s: building %s", spec.name, ctx.store.uri(ref))
    maybe_fail(spec.name, shards_done=None)
    writer = ArtifactWriter(ctx.store, ref)
    result = build(writer)
    manifest = writer.commit(
        inputs={name: r.key for name, r in spec.inputs.items()},
        config=dict(spec.config),
        prompts={p: load_prompt(p).sha256 for p in spec.prompts},
        stats=result.stats,
        usage=result.usage,
    )
    rows = ", ".join(f"{k}={v}" for k, v in manifest.rows.items()) or f"{len(manifest.files)} files"
    log.info("%s: committed %s (%s)", spec.name, ref.key, rows)
    return _finish(ctx, spec.label or spec.name, ref, "executed", manifest, t0)


def runs_as_job(cfg: RayConfig, stage: str) -> bool:
    """Whether ``stage`` is submitted as a Ray Job (``ray.job_address`` and ``ray.job_stages``); inside the job
    the config has no job address, so the job runs the stage itself."""
    return cfg.job_address is not None and stage in cfg.job_stages


def _finish(
    ctx: StageContext,
    stage: str,
    ref: ArtifactRef,
    status: str,
    manifest: Manifest,
    t0: float,
    extra: Mapping[str, Any] | None = None,
) -> ArtifactRef:
    ctx.record(stage, ref, status, manifest, time.perf_counter() - t0, extra)
    if FlowRunContext.get() or TaskRunContext.get():  # outside a run there is no UI to publish to
        create_markdown_artifact(
            key=re.sub(r"[^a-z0-9-]+", "-", f"{stage}-summary".lower()),  # Prefect's key alphabet
            markdown=stage_markdown(manifest, ctx.store.uri(ref), status),
            description=f"{stage}: {status} ({ref.key})",
        )
    return ref
