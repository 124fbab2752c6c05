"""The BARD distillation flow: the method section, stage by stage, in the order of `bard_pipeline.tasks.stage.STAGES`.

- `tokenizer`   the student's tokenizer, which defines the budget unit (reasoning tokens);
- `model`       the models the engines load (built ones, e.g. a GGUF conversion, are stored);
- `ingest`      problems with reference answers, rejected rows recorded;
- `select`      (BRIDGE) the teacher assistant scores the problems; those the teacher budget buys are chosen;
- `sample`      n teacher chains of thought per (chosen) problem, graded; the gold trace selected;
- `assistant`   (BRIDGE) the teacher assistant fine-tuned on the teacher's gold traces;
- `amplify`     (BRIDGE) the refined assistant writes and grades traces for every other training problem;
- `compress`    each gold trace rewritten to every smaller budget tier, validated (length within
                tolerance, answer still correct), retried with feedback, rejections recorded;
- `materialize` budget-conditioned SFT records and RL prompts, split by problem, with a card;
- `sft`         supervised fine-tuning of the student on them (TRL on Ray Train), probed per budget;
- `rl`          GRPO from the SFT checkpoint, reward = correctness x budget fidelity, probed again;
                (a run that evaluates trains only the checkpoints its evaluation loads: `needed_training`)
- `evaluate`    base, SFT and RL students (and the truncation baseline) on benchmarks across a budget
                grid, k samples each: accuracy with bootstrap CIs, length fidelity, an HTML report.

Every stage returns an artifact reference; a stage whose fingerprint is already committed is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bard_core.config import RunConfig
from bard_core.recipes import resolve_config
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.tasks.amplify import amplify
from bard_pipeline.tasks.assistant import assistant
from bard_pipeline.tasks.compress import compress
from bard_pipeline.tasks.context import close_context, open_context
from bard_pipeline.tasks.evaluate import evaluate
from bard_pipeline.tasks.ingest import ingest
from bard_pipeline.tasks.materialize import materialize
from bard_pipeline.tasks.models import ModelLocation, engine_models, prepare_models
from bard_pipeline.tasks.sample import sample
from bard_pipeline.tasks.select import select_problems
from bard_pipeline.tasks.stage import StageContext
from bard_pipeline.tasks.tokenizer import build_tokenizer
from bard_pipeline.tasks.training import (
    checkpoint_location,
    needed_training,
    rl,
    rl_start,
    sft,
    student_checkpoints,
)


def _run_name() -> str:
    params: dict[str, Any] = flow_run.parameters or {}
    recipe = params.get("recipe")
    try:
        cfg = resolve_config(recipe, params.get("overrides") or [], params.get("config"))
    except Exception:  # an invalid config fails inside the flow, where its message is logged
        return f"{Path(recipe).stem if recipe else 'defaults'}-invalid-config"
    return f"{cfg.name}-{cfg.sample.engine.model}"


def _teacher_traces(
    ctx: StageContext, problems: ArtifactRef, tokenizer: ArtifactRef, models: dict[str, ModelLocation]
) -> ArtifactRef:
    """`sample`, and with BRIDGE: `select` before it, `assistant` and `amplify` after it (the traces the
    teacher wrote for the chosen few, and the refined assistant's for the rest)."""
    bridge = ctx.cfg.bridge
    if not bridge.enabled:
        return sample(ctx, problems, tokenizer, models)
    selection = select_problems(ctx, problems, tokenizer, models)
    traces = sample(ctx, problems, tokenizer, models, selection)
    if not bridge.amplify.enabled:
        return traces
    refined = assistant(ctx, traces, problems, models[bridge.assistant])
    return amplify(ctx, problems, traces, tokenizer, checkpoint_location(refined))


def _train_and_evaluate(
    ctx: StageContext, dataset: ArtifactRef, problems: ArtifactRef, tokenizer: ArtifactRef, student: ModelLocation
) -> None:
    """`sft`, `rl` and `evaluate`, as far as `until` lets the run go; a run that evaluates trains only what its
    evaluation loads (e.g. no RL for `evaluate.models=[sft]`)."""
    if not ctx.continues_after("materialize"):
        return
    evaluates = ctx.continues_after("rl") and ctx.cfg.evaluate.enabled
    needed = needed_training(ctx.cfg, evaluates)
    sft_ref = sft(ctx, dataset, student) if "sft" in needed else None
    if not ctx.continues_after("sft"):
        return
    rl_ref = rl(ctx, dataset, rl_start(ctx.cfg, student, sft_ref)) if "rl" in needed else None
    if evaluates:
        evaluate(ctx, problems, tokenizer, student_checkpoints(ctx.cfg, student, sft_ref, rl_ref))


@flow(name="bard-distill", flow_run_name=_run_name, log_prints=True)
def distill(
    recipe: str | None = "toy",
    overrides: list[str] | None = None,
    stages: list[str] | None = None,
    from_run: str | None = None,
    until: str | None = None,
    config: RunConfig | None = None,
) -> dict[str, str]:
    """Run the distillation stages of RECIPE (a YAML file) with key=value OVERRIDES.

    `stages` limits which stages may execute (the others must already exist) and, unless `until` says
    otherwise, the run stops after the last of them; `from_run` takes the artifacts of stages not selected
    from an earlier run; `until` stops after that stage (materialize, sft, rl or evaluate). A whole
    `config` (the UI renders it as a form) replaces the recipe; `overrides` still apply on top.
    """
    cfg = resolve_config(recipe, overrides or [], config)
    ctx = open_context(cfg, recipe, overrides or [], stages, from_run, until, run_id=flow_run.id)
    ok = False
    try:
        tokenizer = build_tokenizer(ctx)
        models = prepare_models(ctx, tokenizer, [*engine_models(cfg), cfg.student.model])
        problems = ingest(ctx)
        traces = _teacher_traces(ctx, problems, tokenizer, models)
        tiers = compress(ctx, traces, problems, tokenizer, models)
        dataset = materialize(ctx, tiers, traces, problems)
        _train_and_evaluate(ctx, dataset, problems, tokenizer, models[cfg.student.model])
        ok = True
    finally:
        close_context(ctx, ok)
    refs = {name: info["artifact"] for name, info in ctx.run.stages.items()}
    print(f"run {ctx.run.run_id}: " + ", ".join(f"{name}={key}" for name, key in refs.items()))
    return refs
