"""The `sft` and `rl` stages: TRL inside Ray Train, the checkpoint stored as an HF folder, probed.

Both stages: check inputs on the driver first (dataset columns, chat template, TRL arguments, over-length
records), fit on Ray Train (resuming from the scratch checkpoint of an interrupted attempt), store the final
model (weights, tokenizer, chat template) as the artifact's `model/` folder, and probe how its reasoning
length follows the budget on held-out problems. The RL stage starts from the SFT checkpoint (or, with
`rl.init: base`, from the untrained student). A run trains only what it needs (``needed_training``).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from bard_core import schemas
from bard_core.budget import AGNOSTIC_TEMPLATE_FIELDS, BudgetSpec
from bard_core.config import RLInit, RLStageConfig, RunConfig, SFTStageConfig
from bard_core.manifest import Manifest
from bard_core.plots import budget_following_plot
from bard_core.prompting import load_prompt
from bard_core.training_data import draw_rl_prompts, instruction_records, split_overlength
from bard_pipeline.infra.curriculum import driver_steps
from bard_pipeline.infra.local_cache import STORE_SCHEME, resolve_location
from bard_pipeline.infra.models import MODEL_PREFIX
from bard_pipeline.infra.probe import run_probe
from bard_pipeline.infra.ray_train import TrainJob, TrainRows, drop_scratch, fit
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.training import check_trl_args, record_lengths, require_chat_template, rl_loop, sft_loop
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.inputs import read_rows
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 4


def checkpoint_location(ref: ArtifactRef) -> ModelLocation:
    """A training artifact as a model location (its `model/` folder), for the next stage or an engine."""
    return ModelLocation(STORE_SCHEME + ref.key, None, ref.key)


def student_checkpoints(
    cfg: RunConfig, base: ModelLocation, sft_ref: ArtifactRef | None, rl_ref: ArtifactRef | None
) -> dict[str, ModelLocation]:
    """What `evaluate` can load, by label: the student before training, after SFT and after RL (those the
    run trained), and the stored checkpoints of `evaluate.checkpoints` (e.g. a budget-agnostic run's sft)."""
    extra = {label: checkpoint_location(ArtifactRef.parse(key)) for label, key in cfg.evaluate.checkpoints.items()}
    trained = {label: checkpoint_location(ref) for label, ref in (("sft", sft_ref), ("rl", rl_ref)) if ref}
    return {"base": base, **trained, **extra}


def needed_training(cfg: RunConfig, evaluates: bool) -> frozenset[str]:
    """The training stages a run needs: when it evaluates, those whose checkpoints the evaluation loads (an
    RL checkpoint needs the SFT one only when RL starts from it); otherwise both, as far as `until` allows."""
    if not evaluates:
        return frozenset({"sft", "rl"})
    labels = {*cfg.evaluate.models, *([cfg.evaluate.truncation.model] if cfg.evaluate.truncation else [])}
    needed = {label for label in labels if label in ("sft", "rl")}
    if "rl" in needed and cfg.rl.init == RLInit.SFT:
        needed.add("sft")
    return frozenset(needed)


def rl_start(cfg: RunConfig, base: ModelLocation, sft_ref: ArtifactRef | None) -> ModelLocation:
    """The model RL starts from (``rl.init``): the SFT checkpoint or the untrained student."""
    if cfg.rl.init == RLInit.BASE:
        return base
    if sft_ref is None:
        raise ValueError("rl.init is 'sft' but this run trained no SFT checkpoint")
    return checkpoint_location(sft_ref)


def _local_model(ctx: StageContext, model: ModelLocation) -> tuple[str, Any]:
    from transformers import AutoTokenizer

    model_dir = resolve_location(model.location, ctx.store.root, ctx.store.endpoint_url, MODEL_PREFIX)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, revision=model.revision)
    require_chat_template(tokenizer, model_dir)
    return model_dir, tokenizer


def _write_rows(writer: ArtifactWriter, name: str, schema: pa.Schema, rows: Sequence[Mapping[str, Any]]) -> TrainRows:
    """Write the rows a worker trains on into the artifact being built; the worker reads them by entry."""
    return TrainRows(writer.ref, writer.write_table(name, pa.Table.from_pylist(list(rows), schema=schema)))


def _job(
    ctx: StageContext,
    section: SFTStageConfig | RLStageConfig,
    model: ModelLocation,
    train: TrainRows,
    validation: TrainRows | None = None,
) -> TrainJob[Any]:
    """What the training workers get: the section, the budget contract, the model and the kept rows."""
    spec: BudgetSpec = ctx.cfg.budget.spec()
    store = ctx.store
    return TrainJob(section, spec, model.location, store.root, store.endpoint_url, train, validation, MODEL_PREFIX)


def _fit_and_store(
    ctx: StageContext, writer: ArtifactWriter, loop: Callable[[dict[str, Any]], None], job: TrainJob[Any]
) -> tuple[str, dict[str, Any]]:
    """Train, store `model/` and the metrics; returns the local final model folder and the run metrics."""
    ctx.ray.ensure()
    run_name = f"{writer.ref.stage}-{writer.ref.fingerprint}"
    folder, metrics = fit(loop, job, run_name, ctx.store)
    writer.write_dir(MODEL_PREFIX, folder / "final")
    history = json.loads(metrics.pop("log_history", "[]"))
    writer.write_json("train_log.json", history)
    local = str(folder / "final")
    drop_scratch(ctx.store, run_name)
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)  # TRL counts the tokens it trained on
    precision = json.loads(metrics.pop("precision", "{}"))  # as the worker resolved it on its device
    logger().info("%s trained at %s on %s", writer.ref.stage, precision.get("reason"), precision.get("device"))
    return local, {
        **metrics,
        "train_tokens": tokens,
        "precision": precision,
        "loss_curve": [h["loss"] for h in history if "loss" in h],
    }


def _probe(
    ctx: StageContext,
    writer: ArtifactWriter,
    models: Mapping[str, str],
    section: SFTStageConfig | RLStageConfig,
    records: Sequence[Mapping[str, Any]],
    earlier: Mapping[str, tuple[list[dict[str, Any]], dict[str, Any]]],
) -> dict[str, Any]:
    """Probe each (label -> model folder); store its generations, and those of `earlier` probes (label ->
    (generations, summary)), with a plot; return every summary."""
    spec: BudgetSpec = ctx.cfg.budget.spec()
    if section.probe.problems == 0:
        return {}
    rows: list[dict[str, Any]] = [row for generated, _ in earlier.values() for row in generated]
    summaries: dict[str, Any] = {label: summary for label, (_, summary) in earlier.items()}
    for label, model_dir in models.items():
        generated, summary = run_probe(model_dir, records, spec, section.probe, label)
        rows += generated
        summaries[label] = summary
        logger().info("probe %s: %s", label, json.dumps(summary.get("overall", {})))
    writer.write_table("probe", pa.Table.from_pylist(rows, schema=schemas.PROBE))
    with tempfile.TemporaryDirectory() as tmp:
        plot = budget_following_plot(summaries, spec, Path(tmp) / "budget_following.png")
        writer.write_bytes("budget_following.png", plot.read_bytes())
    _publish(writer.ref, summaries)
    return summaries


def publish_job_result(ctx: StageContext, ref: ArtifactRef, manifest: Manifest) -> None:
    """The probe table in the Prefect UI when a Ray Job trained (the job has no flow run to publish to):
    rebuilt on the flow side from the summaries the manifest stores."""
    if manifest.stats.get("probe"):
        _publish(ref, manifest.stats["probe"])


def _publish(ref: ArtifactRef, summaries: Mapping[str, Any]) -> None:
    if FlowRunContext.get() is None:
        return
    lines = [
        f"### {ref.stage}: budget-following probe",
        "",
        "| model | budget | accuracy | mean tokens | mean rel. deviation | within tolerance | over budget |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, summary in summaries.items():
        for budget, row in summary.get("per_budget", {}).items():
            lines.append(
                f"| {label} | {budget} | {row['accuracy']:.2f} | {row['mean_tokens']:.1f} | "
                f"{row['mean_relative_deviation']:.2f} | {row['within_tolerance']:.2f} | {row['over_budget']:.2f} |"
            )
        rho = summary.get("overall", {}).get("spearman_budget_length")
        lines.append(f"| {label} | **Spearman {'n/a' if rho is None else f'{rho:.2f}'}** | | | | | |")
    create_markdown_artifact(key=f"{ref.stage}-probe", markdown="\n".join(lines), description=f"{ref.stage} probe")


def _sft_rows(
    ctx: StageContext, writer: ArtifactWriter, dataset: ArtifactRef, tokenizer: Any
) -> tuple[int, list[dict[str, Any]], tuple[TrainRows, TrainRows]]:
    """Read the dataset's SFT records, drop (or refuse, per `sft.overlength`) those over
    `sft.max_length_tokens`, and write the kept ones of each split for the workers.
    Returns (records read, the dropped ones' notes, the kept train and validation rows)."""
    section = ctx.cfg.sft
    splits = {split: read_rows(ctx, dataset, f"sft_{split}", schemas.SFT, "sft") for split in ("train", "validation")}
    if not splits["train"]:
        raise ValueError(
            f"sft: dataset {dataset.key} has no training records: no problem got a correct gold trace or a "
            "valid compression (see the sample and compress stages' stats); use a stronger teacher or more problems"
        )
    kept: dict[str, list[dict[str, Any]]] = {}
    dropped: list[dict[str, Any]] = []
    for split, records in splits.items():
        lengths = record_lengths(records, tokenizer, ("prompt", "completion"))
        kept[split], over = split_overlength(records, lengths, section.max_length_tokens)
        dropped += over
    if dropped and section.overlength == "error":
        raise ValueError(
            f"{len(dropped)} SFT records are longer than sft.max_length_tokens={section.max_length_tokens} "
            f"(longest {max(d['tokens'] for d in dropped)}, e.g. {dropped[0]}); raise the limit or use "
            "sft.overlength: drop"
        )
    if dropped:
        logger().warning(
            "sft: %d records over %d tokens dropped (counted in the manifest)", len(dropped), section.max_length_tokens
        )
    writer.write_json("dropped_overlength.json", dropped)
    rows = {split: _write_rows(writer, f"sft_kept_{split}", schemas.SFT_KEPT, kept[split]) for split in kept}
    return sum(map(len, splits.values())), dropped, (rows["train"], rows["validation"])


def _instruction_rows(
    ctx: StageContext, writer: ArtifactWriter, dataset: ArtifactRef, tokenizer: Any, reasoning_rows: int
) -> tuple[TrainRows, dict[str, Any]]:
    """The curriculum's instruction records (one per training problem of the dataset's `rl_train`), held to
    `sft.max_length_tokens` like the reasoning records and written beside them (`sft_kept_instruction`);
    returns them and the curriculum's stats. A curriculum that leaves no reasoning steps fails here."""
    section = ctx.cfg.sft
    assert section.curriculum is not None
    template = load_prompt(section.curriculum.instruction_template).require(AGNOSTIC_TEMPLATE_FIELDS)
    records = instruction_records(read_rows(ctx, dataset, "rl_train", schemas.RL, "sft"), template)
    if not records:
        raise ValueError(f"sft.curriculum: dataset {dataset.key} has no training problems (rl_train is empty)")
    lengths = record_lengths(records, tokenizer, ("prompt", "completion"))
    kept, dropped = split_overlength(records, lengths, section.max_length_tokens)
    if dropped and (section.overlength == "error" or not kept):
        raise ValueError(
            f"{len(dropped)} of {len(records)} curriculum instruction records are longer than "
            f"sft.max_length_tokens={section.max_length_tokens} (e.g. {dropped[0]}); raise the limit"
            + (" or use sft.overlength: drop" if kept else "")
        )
    total_steps = driver_steps(section, reasoning_rows)
    rows = _write_rows(writer, "sft_kept_instruction", schemas.SFT_KEPT, kept)
    stats = {
        "instruction_records": len(kept),
        "instruction_dropped_overlength": len(dropped),
        "instruction_steps": section.curriculum.instruction_steps,
        "reasoning_steps": total_steps - section.curriculum.instruction_steps,
        "instruction_template": section.curriculum.instruction_template,
    }
    return rows, stats


@task(name="sft", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def sft(ctx: StageContext, dataset: ArtifactRef, student: ModelLocation) -> ArtifactRef:
    section = ctx.cfg.sft
    config = stage_config(section, student=student.identity)
    inputs = {"dataset": dataset}
    if student.location.startswith(STORE_SCHEME):
        inputs["student"] = ArtifactRef.parse(student.location[len(STORE_SCHEME) :])
    # The instruction records' prompt file is fingerprinted by content, like every stage's prompts.
    prompts = (section.curriculum.instruction_template,) if section.curriculum else ()
    spec = StageSpec("sft", VERSION, config, prompts, inputs=inputs)

    def build(writer: ArtifactWriter) -> StageResult:
        model_dir, tokenizer = _local_model(ctx, student)
        check_trl_args(section)  # a bad `trl` fails here, not in a worker
        records, dropped, (train, validation) = _sft_rows(ctx, writer, dataset, tokenizer)
        job = _job(ctx, section, student, train, validation)
        curriculum: dict[str, Any] = {}
        if section.curriculum is not None:
            instruction, curriculum = _instruction_rows(ctx, writer, dataset, tokenizer, train.entry.rows or 0)
            job = dataclasses.replace(job, instruction=instruction)
        rl_validation = read_rows(ctx, dataset, "rl_validation", schemas.RL, "sft")
        earlier: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
        if section.probe.problems:  # the student before training, for comparison
            earlier["base"] = run_probe(model_dir, rl_validation, ctx.cfg.budget.spec(), section.probe, "base")
        local, metrics = _fit_and_store(ctx, writer, sft_loop, job)
        probes = _probe(ctx, writer, {"sft": local}, section, rl_validation, earlier)
        tokens_per_s = metrics["train_tokens"] / max(metrics.get("train_runtime_s", 0.0), 1e-9)
        if curriculum:  # the worker's own count of instruction-phase samples: what its sampler really gave
            curriculum["instruction_samples"] = metrics.get("instruction_samples")
        return StageResult(
            stats={
                "records": records,
                "dropped_overlength": len(dropped),
                "train": {k: metrics.get(k) for k in ("global_step", "train_loss", "eval_loss", "resumed")},
                "train_tokens_per_s": round(tokens_per_s, 1),
                "precision": metrics["precision"],
                "probe": probes,
                **({"curriculum": curriculum} if curriculum else {}),
            },
            usage={
                "train_runtime_s": float(metrics.get("train_runtime_s", 0.0)),
                "train_tokens": float(metrics["train_tokens"]),
            },
        )

    return execute(ctx, spec, build)


@task(name="rl", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def rl(ctx: StageContext, dataset: ArtifactRef, start: ModelLocation) -> ArtifactRef:
    """GRPO from ``start`` (``rl_start``: the SFT checkpoint, or the untrained student with `rl.init: base`)."""
    section = ctx.cfg.rl
    budget = ctx.cfg.budget
    inputs = {"dataset": dataset}
    decisive: dict[str, Any] = {"budget": budget}
    if start.location.startswith(STORE_SCHEME):  # a stored checkpoint or model: an input artifact
        inputs["start"] = ArtifactRef.parse(start.location[len(STORE_SCHEME) :])
    else:  # a hub id or a folder (a base student that is not built): its identity
        decisive["start"] = start.identity
    spec = StageSpec("rl", VERSION, stage_config(section, **decisive), inputs=inputs)
    start_label = section.init.value  # "sft" or "base", as the probe names the model RL started from

    def build(writer: ArtifactWriter) -> StageResult:
        begin = start
        start_dir, tokenizer = _local_model(ctx, begin)
        check_trl_args(section)  # a bad `trl` fails here, not in a worker
        prompts = draw_rl_prompts(read_rows(ctx, dataset, "rl_train", schemas.RL, "rl"), section)
        if not prompts:
            raise ValueError(f"no RL prompts in {dataset.key} (rl_train is empty): nothing to train on")
        kept, dropped = split_overlength(
            prompts, record_lengths(prompts, tokenizer, ("prompt",)), section.max_prompt_tokens
        )
        writer.write_json("dropped_overlength.json", dropped)
        budgets = [int(p["budget_tokens"]) for p in prompts]
        train = _write_rows(writer, "rl_prompts", schemas.RL_PROMPTS, kept)  # drawn once, here; workers read it
        local, metrics = _fit_and_store(ctx, writer, rl_loop, _job(ctx, section, begin, train))
        rl_validation = read_rows(ctx, dataset, "rl_validation", schemas.RL, "rl")
        # Before and after, on the same problems with the same settings: the comparison RL is judged by.
        probes = _probe(ctx, writer, {start_label: start_dir, "rl": local}, section, rl_validation, {})
        return StageResult(
            stats={
                "prompts": len(prompts) - len(dropped),
                "dropped_overlength": len(dropped),
                "budget_mix": {str(b): budgets.count(b) for b in sorted(set(budgets))},
                "train": {k: metrics.get(k) for k in ("global_step", "train_loss", "resumed")},
                "reward_curve": _reward_curve(writer),
                "precision": metrics["precision"],
                "probe": probes,
            },
            usage={"train_runtime_s": float(metrics.get("train_runtime_s", 0.0))},
        )

    return execute(ctx, spec, build)


def _reward_curve(writer: ArtifactWriter) -> dict[str, list[float]]:
    """Each logged reward component over training (from the stored train log)."""
    history = json.loads(writer.store.read_bytes(writer.ref, writer.files["train_log.json"]))
    keys = sorted({k for h in history for k in h if k.startswith(("budget/", "reward"))})
    return {k: [round(float(h[k]), 4) for h in history if k in h] for k in keys}
