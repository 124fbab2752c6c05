"""Deployments served by one long-running process (`bard serve-deployments`; `bard up` starts the same):

- ``bard-distill/distill``        the full distillation; recipe, overrides, stages, from_run, until editable in the UI;
- ``bard-stage/stage``            one stage (and optionally what follows) with its inputs from an earlier run;
- ``bard-teacher-watcher/watcher`` the teacher watcher, on a cron schedule;
- ``bard-experiment/experiment``  a grid of arms over one recipe and its comparison report (an experiment file).

On a cluster, deploy the same flows to a docker or kubernetes work pool instead (see the README).
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, serve

from bard_pipeline.flows.distill import distill
from bard_pipeline.flows.experiment import experiment
from bard_pipeline.flows.watcher import watch_teachers
from bard_pipeline.tasks.stage import STAGES


def _stage_run_name() -> str:
    from prefect.runtime import flow_run

    params: dict[str, Any] = flow_run.parameters or {}
    return f"rerun-{params.get('stage', 'stage')}-from-{str(params.get('from_run', ''))[:8]}"


@flow(name="bard-stage", flow_run_name=_stage_run_name, log_prints=True)
def rerun_stage(
    stage: str,
    from_run: str,
    recipe: str = "toy",
    overrides: list[str] | None = None,
    and_after: bool = False,
) -> dict[str, str]:
    """Run STAGE again (and, with AND_AFTER, every later stage), taking the other stages' artifacts from FROM_RUN."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    stages = list(STAGES[STAGES.index(stage) :]) if and_after else [stage]
    return distill(recipe=recipe, overrides=overrides, stages=stages, from_run=from_run)


EXPERIMENT = "experiments/bard-claims"


def deployments(recipe: str, watch_cron: str | None, experiment_file: str = EXPERIMENT) -> list[Any]:
    return [
        distill.to_deployment(name="distill", parameters={"recipe": recipe}, tags=["bard"]),
        rerun_stage.to_deployment(name="stage", parameters={"recipe": recipe}, tags=["bard"]),
        watch_teachers.to_deployment(name="watcher", parameters={"recipe": recipe}, cron=watch_cron, tags=["bard"]),
        experiment.to_deployment(name="experiment", parameters={"recipe": experiment_file}, tags=["bard"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the BARD deployments (needs PREFECT_API_URL).")
    parser.add_argument("--recipe", default="toy", help="default recipe of the deployments")
    parser.add_argument("--watch-cron", default="*/15 * * * *", help="teacher watcher schedule ('' for none)")
    parser.add_argument("--experiment", default=EXPERIMENT, help="default experiment file of bard-experiment")
    args = parser.parse_args()
    serve(*deployments(args.recipe, args.watch_cron or None, args.experiment))


if __name__ == "__main__":
    main()
