"""BRIDGE's `assistant` stage: the teacher assistant fine-tuned on the teacher's gold traces (TRL on Ray Train).

The TA learns to answer as the teacher does: each record is the teacher's own prompt and its gold trace,
unchanged (no budget: the TA writes full-length traces, which `compress` then cuts to tiers). It is the
`sft` stage's machinery with the `bridge.sft` section and the TA's base model.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.budget import render_assistant
from bard_core.prompting import load_prompt
from bard_core.sampling import TeacherPrompt
from bard_pipeline.infra.local_cache import STORE_SCHEME
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.training import check_trl_args, record_lengths, sft_loop
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.inputs import problems_by_id, read_gold
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, stage_config
from bard_pipeline.tasks.training import _fit_and_store, _job, _local_model, _write_rows

VERSION = 1


def assistant_records(ctx: StageContext, traces: ArtifactRef, problems: ArtifactRef) -> list[dict[str, Any]]:
    """One SFT record per gold teacher trace: the teacher's prompt, the trace as the assistant turn."""
    sample = ctx.cfg.sample
    system = load_prompt(sample.system_prompt) if sample.system_prompt else None
    prompt = TeacherPrompt(load_prompt(sample.prompt_template), system)
    by_id = problems_by_id(ctx, problems, "assistant")
    gold = read_gold(ctx, traces, "assistant").to_pylist()
    return [
        {
            "problem_id": g["problem_id"],
            "budget_tokens": int(g["reasoning_tokens"]),  # no budget: the trace's own length
            "reasoning_tokens": int(g["reasoning_tokens"]),
            "kind": "gold",
            "prompt": prompt.messages(str(by_id[g["problem_id"]]["problem"])),
            "completion": [{"role": "assistant", "content": render_assistant(g["reasoning"], g["final"])}],
        }
        for g in gold
        if g["author"] == "teacher"
    ]


@task(name="assistant", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def assistant(ctx: StageContext, traces: ArtifactRef, problems: ArtifactRef, base: ModelLocation) -> ArtifactRef:
    section = ctx.cfg.bridge.sft
    prompts = (ctx.cfg.sample.prompt_template,) + (
        (ctx.cfg.sample.system_prompt,) if ctx.cfg.sample.system_prompt else ()
    )
    inputs = {"traces": traces, "problems": problems}
    if base.location.startswith(STORE_SCHEME):
        inputs["assistant"] = ArtifactRef.parse(base.location[len(STORE_SCHEME) :])
    spec = StageSpec("assistant", VERSION, stage_config(section, assistant=base.identity), prompts, inputs)

    def build(writer: ArtifactWriter) -> StageResult:
        _, tokenizer = _local_model(ctx, base)
        check_trl_args(section)
        records = assistant_records(ctx, traces, problems)
        if not records:
            raise ValueError(
                f"assistant: the teacher's traces {traces.key} have no correct gold trace to fine-tune the assistant "
                "on; raise bridge.teacher_budget or check the sample stage's stats (accuracy, engine errors)"
            )
        lengths = record_lengths(records, tokenizer, ("prompt", "completion"))
        kept = [r for r, n in zip(records, lengths, strict=True) if n <= section.max_length_tokens]
        writer.write_json("dropped_overlength.json", [r["problem_id"] for r, n in zip(records, lengths, strict=True)
                                                     if n > section.max_length_tokens])  # fmt: skip
        train = _write_rows(writer, "assistant_train", schemas.SFT_KEPT, kept)
        _, metrics = _fit_and_store(ctx, writer, sft_loop, _job(ctx, section, base, train))
        return StageResult(
            stats={
                "records": len(records),
                "dropped_overlength": len(records) - len(kept),
                "train": {k: metrics.get(k) for k in ("global_step", "train_loss", "resumed")},
                "precision": metrics["precision"],
            },
            usage={
                "train_runtime_s": float(metrics.get("train_runtime_s", 0.0)),
                "train_tokens": float(metrics["train_tokens"]),
            },
        )

    return execute(ctx, spec, build)
