"""`bard experiment RECIPE [key=value ...]`: run an experiment file's arms locally, print the time per arm and
the claims table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def experiment(
    recipe: Annotated[Path, typer.Argument(help="Experiment file, e.g. configs/experiments/bard-claims.yaml")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides applied to every arm (after the arms' own)")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also stream Ray's own output (workers, Ray Data, Ray Train) here")
    ] = False,
) -> None:
    """Run every arm of an experiment (one distillation run each, sharing every artifact they can), then the
    comparison report with its claims table."""
    from bard_core.experiment import load_experiment, resolve_arms
    from bard_core.recipes import ConfigError
    from bard_pipeline.infra.progress import configure_terminal

    configure_terminal(verbose)
    try:
        spec = load_experiment(recipe)
        configs = resolve_arms(spec, overrides or [])  # fail fast, before Prefect starts
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    from bard_pipeline.flows.experiment import experiment as experiment_flow
    from bard_pipeline.infra.reaper import guard
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

    guard()  # a killed driver's Prefect server, Ray runtime and scratch are cleaned up (infra/reaper.py)

    result = experiment_flow(recipe=str(recipe), overrides=overrides or [])
    arms = Table("arm", "series", "run", "evaluate", "wall s", title="arms")
    for column in arms.columns:  # ids are copied whole (`bard artifacts runs --run ID`): fold, never cut
        column.overflow = "fold"
    for name, arm in result["arms"].items():
        arms.add_row(name, spec.arms[name].series, arm["run"], arm["evaluate"], f"{arm['wall_s']:.1f}")
    console.print(arms)
    cfg = configs[spec.reference]
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    manifest = store.manifest(ArtifactRef.parse(result["report"]))
    claims = Table("claim", "verdict", "deciding numbers", title="claims")
    for claim in manifest.stats["claims"]:
        claims.add_row(claim["claim"], "held" if claim["held"] else "not held", claim["numbers"])
    console.print(claims)
    console.print(f"report: {manifest.stats['report']}  (bard report {result['report']} --open)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(experiment)
