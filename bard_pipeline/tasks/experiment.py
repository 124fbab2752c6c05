"""The `experiment` stage: the arms' evaluate artifacts in, one comparison report out (an artifact like any
other, content-addressed by the arms' evaluations and the experiment's series, reference and claims, so a
rerun with everything committed skips it).

Accuracy and every other figure are recomputed here from each arm's stored generations (its series only);
``cross_check`` records how far the recomputed accuracy is from the evaluate stage's own metrics. What each
arm cost (``cost``: teacher requests, tokens, dollars; seconds per stage) comes from its run manifest's
``cost`` block, or from its stage manifests for a run closed without one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from bard_core import schemas
from bard_core.config import RunConfig
from bard_core.config.experiment import ExperimentConfig
from bard_core.experiment import paired_settings
from bard_core.experiment_metrics import Bootstrap, compare_arms, series_rows
from bard_core.experiment_report import COST_PLOT, claims_rows, cost_points, render_html, render_markdown
from bard_core.plots import accuracy_vs_teacher_cost_plot, pareto_plot
from bard_core.report import _markdown_table
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore, utc_now
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.context import record_cost
from bard_pipeline.tasks.inputs import read_rows
from bard_pipeline.tasks.stage import RunRecord, StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 2  # 2: the report has each arm's teacher cost and the accuracy-vs-teacher-cost plot
STAGE = "experiment"


@dataclass(frozen=True)
class ArmRun:
    """One arm's distillation run: its flow-run id, its evaluate artifact and how long it took."""

    name: str
    run_id: str
    evaluate: ArtifactRef
    wall_s: float


def open_experiment(
    cfg: RunConfig, experiment: ExperimentConfig, recipe: str, overrides: Sequence[str], run_id: str
) -> StageContext:
    """The experiment run's context: the reference arm's store, a run record named after the experiment."""
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    run = RunRecord(run_id, experiment.name, recipe, list(overrides), experiment.model_dump(mode="json"))
    store.write_run(run_id, run.as_dict())
    return StageContext(cfg=cfg, store=store, ray=RaySession(cfg.ray), run=run, selected=frozenset({STAGE}))


def close_experiment(ctx: StageContext, ok: bool, arms: Mapping[str, ArmRun]) -> None:
    """Record the outcome, the arms' runs and times; tag the experiment's name with this run."""
    ctx.run.status = "completed" if ok else "failed"
    arm_runs = {
        a.name: {"run": a.run_id, "evaluate": a.evaluate.key, "wall_s": round(a.wall_s, 1)} for a in arms.values()
    }
    ctx.store.write_run(ctx.run.run_id, {**ctx.run.as_dict(), "arms": arm_runs, "finished_at": utc_now()})
    if ok:
        ctx.store.tag(ctx.run.name, ctx.run.run_id)
    if arm_runs and (FlowRunContext.get() or TaskRunContext.get()):
        table = [{"arm": name, **info} for name, info in arm_runs.items()]
        create_table_artifact(key="experiment-arms", table=table, description=f"{ctx.run.name}: runs and time per arm")


def _arm_rows(ctx: StageContext, experiment: ExperimentConfig, refs: Mapping[str, ArtifactRef]) -> dict[str, Any]:
    rows = {}
    for name, arm in experiment.arms.items():
        table = f"generations_{arm.model}"
        rows[name] = series_rows(read_rows(ctx, refs[name], table, schemas.GENERATIONS, STAGE), arm)
    return rows


def _arm_costs(ctx: StageContext, arms: Mapping[str, ArmRun]) -> dict[str, Any]:
    """Arm -> what its run cost (``RunCost.as_dict``): the run manifest's ``cost``, else computed from its
    stage manifests; None (shown as unknown) when neither can be read."""
    costs: dict[str, Any] = {}
    for name, arm in arms.items():
        try:
            record = ctx.store.read_run(arm.run_id)
            costs[name] = record.get("cost") or record_cost(ctx.store, record).as_dict()
        except (KeyError, OSError, ValueError) as exc:  # a missing run or manifest: the report says unknown
            logger().warning("arm %s: cost of run %s unknown (%s: %s)", name, arm.run_id, type(exc).__name__, exc)
            costs[name] = None
    return costs


def _cross_check(
    ctx: StageContext, experiment: ExperimentConfig, refs: Mapping[str, ArtifactRef], comparison: Mapping[str, Any]
) -> float | None:
    """Largest |recomputed accuracy − the evaluate stage's accuracy| over every arm and budget (0 when equal;
    None when the evaluate stage has no figure for one of them)."""
    worst = 0.0
    for name, arm in experiment.arms.items():
        metrics = read_rows(ctx, refs[name], "metrics", schemas.METRICS, STAGE)
        mine = [m for m in metrics if (m["model"], m["mode"]) == (arm.model, arm.mode.value)]
        stored = {int(m["budget_tokens"]): float(m["accuracy"]) for m in mine}
        for row in comparison["arms"][name]:
            if int(row["budget_tokens"]) not in stored:
                return None
            worst = max(worst, abs(row["accuracy"] - stored[int(row["budget_tokens"])]))
    return worst


def _facts(
    experiment: ExperimentConfig, arms: Mapping[str, ArmRun], cfg: RunConfig, comparison: Mapping[str, Any]
) -> dict[str, Any]:
    settings = paired_settings(cfg)
    boot = Bootstrap(cfg.evaluate.bootstrap_samples, cfg.evaluate.confidence, cfg.evaluate.seed)
    problems = max((r["problems"] for rows in comparison["arms"].values() for r in rows), default=0)
    facts: dict[str, Any] = {
        "experiment": experiment.name,
        "base recipe": experiment.base,
        "common overrides": " ".join(experiment.overrides) or "none",
        "benchmarks": ", ".join(b.name for b in cfg.evaluate.benchmarks),
        "held-out problems per budget (largest arm)": problems,
        "budgets": settings["budgets"],
        "samples per problem (k)": cfg.evaluate.samples_per_problem,
        "confidence, bootstrap resamples (over problems)": f"{boot.confidence}, {boot.samples}",
        "short wrong answer": "wrong and not over the budget's accepted band",
        "reference arm": experiment.reference,
    }
    for name, arm in experiment.arms.items():
        run = arms[name]
        facts[f"arm {name}"] = (
            f"series {arm.series}; overrides {' '.join(arm.overrides) or 'none'}; {run.evaluate.key}; run {run.run_id}"
        )
    return facts


@task(name="experiment", cache_policy=NO_CACHE)
def compare(ctx: StageContext, experiment: ExperimentConfig, arms: Mapping[str, ArmRun]) -> ArtifactRef:
    """The comparison report of the arms' evaluations (``bard_core.experiment_metrics``)."""
    cfg = ctx.cfg
    refs = {name: arm.evaluate for name, arm in arms.items()}
    boot = Bootstrap(cfg.evaluate.bootstrap_samples, cfg.evaluate.confidence, cfg.evaluate.seed)
    config = stage_config(
        cfg.budget,
        series={name: arm.series for name, arm in experiment.arms.items()},
        reference=experiment.reference,
        claims=list(experiment.claims),
        bootstrap=[boot.samples, boot.confidence, boot.seed],
    )
    spec = StageSpec(STAGE, VERSION, config, inputs={f"arm_{name}": ref for name, ref in refs.items()})

    def build(writer: ArtifactWriter) -> StageResult:
        comparison = compare_arms(
            _arm_rows(ctx, experiment, refs), experiment.reference, experiment.claims, cfg.budget.spec(), boot
        )
        comparison["cross_check"] = {
            "max_accuracy_difference_vs_evaluate": _cross_check(ctx, experiment, refs, comparison)
        }
        comparison["cost"] = _arm_costs(ctx, arms)
        writer.write_json("comparison.json", comparison)
        uri = _write_report(writer, ctx, experiment, comparison, _facts(experiment, arms, cfg, comparison))
        return StageResult(
            stats={"report": uri, "claims": comparison["claims"], "cross_check": comparison["cross_check"]}
        )

    ref = execute(ctx, spec, build)
    _publish(ctx, ref)
    return ref


def _write_report(
    writer: ArtifactWriter,
    ctx: StageContext,
    experiment: ExperimentConfig,
    comparison: Mapping[str, Any],
    facts: Mapping[str, Any],
) -> str:
    title = f"BARD experiment: {experiment.name} ({writer.ref.key})"
    series = {name: arm.series for name, arm in experiment.arms.items()}
    with tempfile.TemporaryDirectory() as tmp:
        plot = pareto_plot(comparison["arms"], Path(tmp) / "pareto.png")
        writer.write_bytes("plots/pareto.png", plot.read_bytes())
        cost_plot = accuracy_vs_teacher_cost_plot(cost_points(comparison), Path(tmp) / "cost.png")
        writer.write_bytes(COST_PLOT, cost_plot.read_bytes())
        page = render_html(title, comparison, facts, series, [plot], cost_plot)
    writer.write_bytes("report.html", page.encode("utf-8"))
    writer.write_bytes("report.md", render_markdown(title, comparison, facts, series).encode("utf-8"))
    return ctx.store.uri(writer.ref, writer.files["report.html"].path)


def _publish(ctx: StageContext, ref: ArtifactRef) -> None:
    """A link to the report and its claims table in the Prefect UI (also when the artifact was skipped)."""
    if not (FlowRunContext.get() or TaskRunContext.get()):
        return
    manifest = ctx.store.manifest(ref)
    uri = manifest.stats["report"]
    claims = _markdown_table(claims_rows({"claims": manifest.stats["claims"]}))
    markdown = f"### Experiment report\n\n[{uri}]({uri})\n\n{claims}\n\nOpen it with `bard report {ref.key} --open`."
    create_markdown_artifact(key="experiment-report", markdown=markdown, description="experiment comparison report")
