"""The experiment flow: a grid of arms over one base recipe, each arm one run of the distillation flow (a
subflow, with its own run manifest), then one comparison report.

Arms share every artifact their configs share: the store is content-addressed and a committed stage is
skipped, so the data stages run once and one SFT serves every arm that starts from it; an arm evaluates only
the series that stands for it. Every arm's config is resolved and checked before the first arm runs (same
held-out problems, budgets, k and seed in every arm, so per-problem paired comparisons are valid).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from bard_core.experiment import arm_overrides, load_experiment, resolve_arms
from bard_pipeline.flows.distill import distill
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.tasks.experiment import ArmRun, close_experiment, compare, open_experiment


def _run_name() -> str:
    params: dict[str, Any] = flow_run.parameters or {}
    return f"experiment-{Path(str(params.get('recipe') or 'experiment')).stem}"


def _run_arm(recipe: str, overrides: list[str], name: str) -> ArmRun:
    t0 = time.perf_counter()
    state = distill(recipe=recipe, overrides=overrides, return_state=True)
    refs: dict[str, str] = state.result()  # raises when the arm's run failed
    if "evaluate" not in refs:
        raise RuntimeError(f"arm {name!r} produced no evaluation (stages: {', '.join(refs)})")
    run_id = str(state.state_details.flow_run_id)
    return ArmRun(name, run_id, ArtifactRef.parse(refs["evaluate"]), time.perf_counter() - t0)


@flow(name="bard-experiment", flow_run_name=_run_name, log_prints=True)
def experiment(recipe: str = "experiments/bard-claims", overrides: list[str] | None = None) -> dict[str, Any]:
    """Run every arm of the experiment file RECIPE (key=value OVERRIDES apply to every arm, last), then the
    comparison report with its claims table. Returns the report artifact and, per arm, its run, its evaluate
    artifact and its wall time."""
    extra = list(overrides or [])
    spec = load_experiment(recipe)
    configs = resolve_arms(spec, extra)  # every arm checked before the first one runs
    ctx = open_experiment(configs[spec.reference], spec, recipe, extra, str(flow_run.id))
    arms: dict[str, ArmRun] = {}
    ok = False
    try:
        for name in spec.arms:
            arms[name] = _run_arm(spec.base, arm_overrides(spec, name, extra), name)
            print(f"arm {name}: run {arms[name].run_id}, {arms[name].evaluate.key}, {arms[name].wall_s:.1f} s")
        report = compare(ctx, spec, arms)
        ok = True
    finally:
        close_experiment(ctx, ok, arms)
    print(f"experiment {spec.name}: report {ctx.store.uri(report)}")
    return {
        "run": ctx.run.run_id,
        "report": report.key,
        "arms": {
            a.name: {"run": a.run_id, "evaluate": a.evaluate.key, "wall_s": round(a.wall_s, 1)} for a in arms.values()
        },
    }
