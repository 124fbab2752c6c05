"""The `evaluate` stage: every checkpoint on every benchmark across a budget grid, k samples each, plus the
truncation baseline; generations and metrics (with bootstrap CIs) stored; a report with plots.

Each model is one actor pool over the configured engine (its weights loaded once per replica); its
generations are a sharded table, so an interrupted evaluation resumes at the last finished shard.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.budget import AGNOSTIC_TEMPLATE_FIELDS, USER_TEMPLATE_FIELDS
from bard_core.config import (
    BenchmarkConfig,
    BundledBenchmark,
    BundledSourceConfig,
    EvaluateConfig,
    FileBenchmark,
    FileSourceConfig,
    IngestedBenchmark,
)
from bard_core.evaluation import (
    EvalSettings,
    TruncationPrompt,
    eval_requests,
    generation_order,
    in_request_order,
    summarize,
)
from bard_core.manifest import Manifest
from bard_core.mode_table import mode_table
from bard_core.plots import evaluation_plots
from bard_core.problems import ProblemCollector
from bard_core.prompting import load_prompt
from bard_core.report import render_html, render_markdown
from bard_pipeline.infra.jobs import EngineWorker, EvalJobSpec
from bard_pipeline.infra.sources import source_content_hash, source_grader, source_rows
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.engine_stage import EngineSetup, run_engine_stage
from bard_pipeline.tasks.inputs import read_input
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 1


def _as_source(bench: BundledBenchmark | FileBenchmark) -> BundledSourceConfig | FileSourceConfig:
    if isinstance(bench, BundledBenchmark):
        return BundledSourceConfig(name=bench.name, split="test", limit=bench.limit, grader=bench.grader)
    fields = {k: getattr(bench, k) for k in ("path", "id_field", "problem_field", "answer_field", "grader", "limit")}
    return FileSourceConfig(split="test", **fields)


def load_benchmark(
    ctx: StageContext, bench: BenchmarkConfig, problems: ArtifactRef
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(accepted problems, rejected rows with reasons) of one benchmark."""
    if isinstance(bench, IngestedBenchmark):
        table = read_input(ctx, problems, "problems", schemas.PROBLEMS, "evaluate")
        table = table.filter(pc.equal(table.column("split"), bench.split)).sort_by("problem_id")
        if table.num_rows == 0:
            raise ValueError(
                f"evaluate: benchmark {bench.name!r} has no ingested problems in split {bench.split!r}; "
                "add an ingest source with that split (e.g. {kind: toy, split: test}) or choose another benchmark"
            )
        rows = table.to_pylist()
        return (rows[: bench.limit] if bench.limit else rows), []
    source = _as_source(bench)
    collector = ProblemCollector()
    collector.add(source_rows(source), "test", source_grader(source), bench.limit)
    return collector.accepted, collector.rejected


def _requests(
    cfg: EvaluateConfig, ctx: StageContext, name: str, problems: list[dict[str, Any]], budgets: tuple[int, ...]
) -> dict[str, list[dict[str, Any]]]:
    """Request rows per model label (``bard_core.evaluation.eval_requests``) with the run's prompt files."""
    budgeted = load_prompt(ctx.cfg.budget.user_template).require(USER_TEMPLATE_FIELDS)
    plain = load_prompt(ctx.cfg.budget.agnostic_template).require(AGNOSTIC_TEMPLATE_FIELDS)
    trunc = cfg.truncation
    truncation = TruncationPrompt(trunc.model, trunc.prompt_budget_tokens) if trunc is not None else None
    contract = ctx.cfg.budget.contract() if ctx.cfg.budget.modes else None
    return eval_requests(name, problems, cfg.models, budgets, budgeted, plain, truncation, contract)


def _all_requests(
    ctx: StageContext, cfg: EvaluateConfig, problems: ArtifactRef, budgets: tuple[int, ...]
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict[str, int]]:
    """(request rows per model label, rejected benchmark rows, accepted problems per benchmark)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    rejected: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for bench in cfg.benchmarks:
        accepted, bad = load_benchmark(ctx, bench, problems)
        rejected += [{**r, "source": f"{bench.name}:{r['source']}"} for r in bad]
        counts[bench.name] = len(accepted)
        if bad:
            logger().warning("evaluate: %s: %d rows skipped (%s)", bench.name, len(bad), _reasons(bad))
        for label, rows in _requests(cfg, ctx, bench.name, accepted, budgets).items():
            by_label.setdefault(label, []).extend(rows)
    return by_label, rejected, counts


def _benchmark_identity(bench: BenchmarkConfig) -> str | None:
    if isinstance(bench, IngestedBenchmark):
        return None  # the ingest artifact's fingerprint is an input already
    return source_content_hash(_as_source(bench))


def prompt_files(ctx: StageContext) -> tuple[str, ...]:
    """The prompt files the stage's fingerprint covers: the effort prompt only with modes, so that a run
    without them keeps its fingerprint."""
    budget = ctx.cfg.budget
    return (budget.user_template, budget.agnostic_template) + ((budget.effort_template,) if budget.modes else ())


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    ctx: StageContext, problems: ArtifactRef, tokenizer: ArtifactRef, checkpoints: Mapping[str, ModelLocation]
) -> ArtifactRef:
    cfg = ctx.cfg.evaluate
    budgets = cfg.budgets_tokens or ctx.cfg.budget.tiers_tokens
    labels = list(dict.fromkeys([*cfg.models, *([cfg.truncation.model] if cfg.truncation else [])]))
    config = stage_config(
        cfg,
        budgets_tokens=list(budgets),
        budget=ctx.cfg.budget,
        models={label: checkpoints[label].identity for label in labels},
        benchmark_files=[_benchmark_identity(b) for b in cfg.benchmarks],
    )
    spec = StageSpec("evaluate", VERSION, config, prompt_files(ctx), {"problems": problems, "tokenizer": tokenizer})

    def build(writer: ArtifactWriter) -> StageResult:
        log = logger()
        by_label, rejected, counts = _all_requests(ctx, cfg, problems, budgets)
        writer.write_table("rejections", pa.Table.from_pylist(rejected, schema=schemas.REJECTIONS))
        usage: dict[str, Any] = {}
        backends: set[str] = set()
        ray_start_s = _start_ray(ctx)
        for label in labels:
            # Requests sharing a token limit are contiguous, so each engine call is one wide batch.
            rows = generation_order(by_label.get(label, []), _settings(ctx, cfg, label, budgets))
            table = pa.Table.from_pylist(rows, schema=schemas.EVAL_REQUESTS)
            usage[label], backend = _generate(ctx, writer, cfg, label, checkpoints[label], tokenizer, table, budgets)
            log.info("evaluate: %s done on %s (%d requests)", label, backend, table.num_rows)
            backends.add(backend)
        generations = pa.concat_tables(
            writer.read_table(f"generations_{label}", schemas.GENERATIONS) for label in labels
        )
        requests = [row for label in labels for row in by_label.get(label, [])]
        metrics = summarize(
            in_request_order(generations.to_pylist(), requests),
            ctx.cfg.budget.spec(), cfg.bootstrap_samples, cfg.confidence, cfg.seed,
        )  # fmt: skip
        writer.write_table("metrics", pa.Table.from_pylist(metrics, schema=schemas.METRICS))
        modes = _mode_rows(ctx, cfg, generations, requests)
        if modes:
            writer.write_table("modes", pa.Table.from_pylist(modes, schema=schemas.MODES))
        facts = {"benchmarks": counts, "budgets": list(budgets), "samples per problem": cfg.samples_per_problem,
                 "models": {label: checkpoints[label].identity for label in labels},
                 "rejected benchmark rows": len(rejected), "confidence": cfg.confidence}  # fmt: skip
        report_uri = _write_report(writer, metrics, facts, ctx, modes)
        _publish(metrics, report_uri, ctx.cfg.name)
        return StageResult(
            stats={
                "benchmarks": counts,
                "rejected": len(rejected),
                "report": report_uri,
                "metrics": metrics,
                **({"modes": modes} if modes else {}),
                "engine_backend": "; ".join(sorted(backends)),
            },
            usage={
                "ray_start_s": ray_start_s,
                **{f"{label}_{k}": v for label, u in usage.items() for k, v in u.items() if isinstance(v, int | float)},
            },
        )

    return execute(ctx, spec, build)


def _generate(
    ctx: StageContext,
    writer: ArtifactWriter,
    cfg: EvaluateConfig,
    label: str,
    model: ModelLocation,
    tokenizer: ArtifactRef,
    table: pa.Table,
    budgets: tuple[int, ...],
) -> tuple[dict[str, float], str]:
    engine = cfg.engine.model_copy(update={"model": label})
    setup = EngineSetup(engine, cfg.resources, tokenizer, model)
    settings = _settings(ctx, cfg, label, budgets)

    def make_job(worker: EngineWorker) -> EvalJobSpec:
        return EvalJobSpec(worker, settings)

    # One token limit per engine call (the rows come in generation order: each limit is one run of rows).
    return run_engine_stage(
        ctx, writer, f"generations_{label}", table, cfg.shard_rows, setup, make_job, schemas.GENERATIONS,
        ("mode", "budget_tokens"),
    )  # fmt: skip


def _start_ray(ctx: StageContext) -> float:
    """Start the run's Ray runtime (unless an earlier stage did) and import Ray Data, and say how long that
    took: a fixed cost of the stage, reported apart from the generation it precedes."""
    t0 = time.perf_counter()
    ctx.ray.ensure()
    import ray.data  # noqa: F401  (seconds on a busy 2-core machine; the actor pool needs it next)

    return round(time.perf_counter() - t0, 3)


def _settings(ctx: StageContext, cfg: EvaluateConfig, label: str, budgets: tuple[int, ...]) -> EvalSettings:
    trunc = cfg.truncation
    return EvalSettings(
        label, ctx.cfg.budget.spec(), tuple(budgets), cfg.samples_per_problem, cfg.temperature,
        cfg.top_p, cfg.seed, cfg.max_new_tokens_factor, cfg.answer_tokens,
        trunc.max_new_tokens if trunc else 0, trunc.answer_tokens if trunc else 0,
    )  # fmt: skip


def _mode_rows(
    ctx: StageContext, cfg: EvaluateConfig, generations: pa.Table, requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The effort-mode table (``bard_core.mode_table``), empty without ``budget.modes``."""
    if not ctx.cfg.budget.modes:
        return []
    rows = in_request_order(generations.to_pylist(), requests)
    return mode_table(rows, ctx.cfg.budget.contract(), cfg.bootstrap_samples, cfg.confidence, cfg.seed)


def _reasons(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def _write_report(
    writer: ArtifactWriter,
    metrics: list[dict[str, Any]],
    facts: dict[str, Any],
    ctx: StageContext,
    modes: list[dict[str, Any]],
) -> str:
    title = f"BARD evaluation: {ctx.cfg.name} ({writer.ref.key})"
    # Effort rows have no budget axis: the effort-mode table shows them, not the plots against budget.
    plotted = [m for m in metrics if m["mode"] != schemas.EvalMode.EFFORT]
    with tempfile.TemporaryDirectory() as tmp:
        plots = evaluation_plots(plotted, ctx.cfg.budget.spec(), Path(tmp))
        for name, path in plots.items():
            writer.write_bytes(f"plots/{name}.png", path.read_bytes())
        page = render_html(title, metrics, facts, plots, modes)
    writer.write_bytes("report.html", page.encode("utf-8"))
    writer.write_bytes("report.md", render_markdown(title, metrics, facts, modes).encode("utf-8"))
    entry = writer.files["report.html"]
    return ctx.store.uri(writer.ref, entry.path)


def publish_job_result(ctx: StageContext, ref: ArtifactRef, manifest: Manifest) -> None:
    """The metrics table and the report link in the Prefect UI when a Ray Job evaluated (the job has no flow
    run to publish to): rebuilt on the flow side from the manifest's stats."""
    _publish(manifest.stats["metrics"], manifest.stats["report"], ctx.cfg.name)


def _publish(metrics: list[dict[str, Any]], report_uri: str, run_name: str) -> None:
    from prefect.context import FlowRunContext, TaskRunContext

    if not (FlowRunContext.get() or TaskRunContext.get()):
        return
    shown = [m for m in metrics if m["mode"] not in (schemas.EvalMode.UNCONSTRAINED, schemas.EvalMode.EFFORT)]
    table = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k in _TABLE_KEYS} for m in shown]
    create_table_artifact(key="evaluate-metrics", table=table, description=f"{run_name}: metrics per budget")
    create_markdown_artifact(
        key="evaluate-report",
        markdown=f"### Evaluation report\n\n[{report_uri}]({report_uri})\n\nOpen it with `bard report RUN_ID --open`.",
        description="evaluation report (HTML, self-contained)",
    )


_TABLE_KEYS = (
    "model", "benchmark", "mode", "budget_tokens", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
    "mean_reasoning_tokens", "mean_relative_deviation", "within_tolerance", "over_budget", "unparsed",
)  # fmt: skip
