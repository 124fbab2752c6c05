"""The `bard` command line: run the pipeline, inspect configs and artifacts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.table import Table

from bard_pipeline.infra.env import apply_defaults

if TYPE_CHECKING:
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

apply_defaults()  # before anything imports Prefect or Ray

from bard_pipeline.flows.experiment_cli import register as register_experiment_commands  # noqa: E402
from bard_pipeline.flows.export_cli import register as register_export_command  # noqa: E402
from bard_pipeline.flows.options import RecipeOpt, StoreOpt  # noqa: E402
from bard_pipeline.flows.push_cli import register as register_push_command  # noqa: E402
from bard_pipeline.flows.recipes_cli import register as register_recipe_commands  # noqa: E402
from bard_pipeline.flows.serve_cli import register as register_serve_command  # noqa: E402
from bard_pipeline.flows.stack_cli import register as register_stack_commands  # noqa: E402

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Budget-aware reasoning distillation pipeline.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect resolved configs.")
artifacts_app = typer.Typer(no_args_is_help=True, help="List, show, verify, export, push and remove artifacts.")
data_app = typer.Typer(no_args_is_help=True, help="Bundled benchmark and training files.")
app.add_typer(config_app, name="config")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(data_app, name="data")
console = Console()

Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. sample.n_samples=2")]


def _fail(message: str) -> NoReturn:
    # soft_wrap: no hard line breaks inside a message, so the ids and paths it names can be copied whole
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _config(recipe: Path | None, overrides: list[str] | None):
    from bard_core.recipes import ConfigError, load_config

    try:
        return load_config(recipe, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe: a YAML file, or a packaged name such as toy (bard recipes)")],
    overrides: Overrides = None,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated stages allowed to run (others must exist)")
    ] = None,
    from_run: Annotated[
        str | None, typer.Option(help="Reuse the artifacts of this run (id or unique prefix) for stages not selected")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Stop after this stage (e.g. materialize)")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also stream Ray's own output (workers, Ray Data, Ray Train) here")
    ] = False,
) -> None:
    """Run the distillation flow locally (ephemeral Prefect, local Ray, the recipe's store)."""
    from bard_pipeline.infra.progress import configure_terminal
    from bard_pipeline.infra.reaper import guard

    cfg = _config(recipe, overrides)  # fail fast, before Prefect starts, on a bad config
    if from_run:  # and on a run id that matches no run, or several (the flow resolves the same way)
        from bard_pipeline.infra.store import ArtifactStore

        _run_id(ArtifactStore(cfg.store.root, cfg.store.endpoint_url), from_run)
    # Only a run that goes ahead changes this process: the terminal switch (before Ray or transformers load:
    # they read it when they start), then the guard (before Prefect or Ray start a process: a killed driver's
    # processes and scratch are cleaned up).
    configure_terminal(verbose)
    guard()
    from bard_pipeline.flows.distill import distill

    selected = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    refs = distill(recipe=str(recipe), overrides=overrides or [], stages=selected, from_run=from_run, until=until)
    table = Table("stage", "artifact")
    for stage, key in refs.items():
        table.add_row(stage, key)
    console.print(table)


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Recipes (default: every packaged run recipe)")] = None,
) -> None:
    """Validate recipes (config models, and the TRL trainer configs they build); exit 1 if any fails."""
    from bard_core.recipes import ConfigError, load_config, recipe_names

    recipes = paths or [Path(n) for n in recipe_names() if not n.startswith("experiments/")]
    from bard_pipeline.infra.training import TrainingConfigError, validate_trl

    failed = 0
    for recipe in recipes:
        try:
            cfg = load_config(recipe)
            validate_trl(cfg.sft, cfg.rl, cfg.bridge.sft if cfg.bridge.enabled else None)  # trl.SFTConfig / GRPOConfig
            console.print(f"[green]ok[/green]   {recipe}")
        except (ConfigError, TrainingConfigError) as exc:
            failed += 1
            console.print(f"[red]FAIL[/red] {recipe}: {exc}", highlight=False)
    if failed:
        raise typer.Exit(1)


@config_app.command("show")
def config_show(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe file or name (omit for the defaults)")] = None,
    overrides: Overrides = None,
) -> None:
    """Print the fully resolved config as YAML."""
    cfg = _config(recipe, overrides)
    sys.stdout.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def _store(store: str | None, recipe: Path | None):
    from bard_core.config import StoreConfig
    from bard_pipeline.infra.store import ArtifactStore

    if store:
        return ArtifactStore(StoreConfig(root=store).root)
    cfg = _config(recipe, []).store if recipe else StoreConfig()
    return ArtifactStore(cfg.root, cfg.endpoint_url)


def _ref(key: str):
    from bard_pipeline.infra.store import ArtifactRef

    try:
        return ArtifactRef.parse(key)
    except ValueError as exc:
        _fail(str(exc))


@artifacts_app.command("ls")
def artifacts_ls(
    stage: Annotated[str | None, typer.Option(help="Only this stage")] = None,
    store: StoreOpt = None,
    recipe: RecipeOpt = None,
) -> None:
    """List committed artifacts."""
    st = _store(store, recipe)
    table = Table("artifact", "created", "rows", "wall s", title=st.root)
    for m in st.list(stage):
        rows = ", ".join(f"{k}={v}" for k, v in m.rows.items())
        table.add_row(f"{m.stage}/{m.fingerprint}", m.created_at, rows, f"{m.timings.get('wall_s', 0):.1f}")
    console.print(table)


@artifacts_app.command("show")
def artifacts_show(ref: str, store: StoreOpt = None, recipe: RecipeOpt = None) -> None:
    """Print an artifact's manifest."""
    from bard_pipeline.infra.store import ArtifactNotFoundError

    try:
        manifest = _store(store, recipe).manifest(_ref(ref))
    except ArtifactNotFoundError as exc:
        _fail(str(exc))
    sys.stdout.write(manifest.model_dump_json(indent=2) + "\n")


@artifacts_app.command("verify")
def artifacts_verify(
    refs: Annotated[list[str] | None, typer.Argument(help="STAGE/FINGERPRINT (default: all)")] = None,
    store: StoreOpt = None,
    recipe: RecipeOpt = None,
) -> None:
    """Check every file of the artifacts against its manifest sha256."""
    from bard_pipeline.infra.store import ArtifactRef

    st = _store(store, recipe)
    targets = [_ref(r) for r in refs] if refs else [ArtifactRef(m.stage, m.fingerprint) for m in st.list()]
    bad = 0
    for target in targets:
        problems = st.verify(target)
        bad += bool(problems)
        console.print(f"[green]ok[/green]   {target.key}" if not problems else f"[red]BAD[/red]  {target.key}")
        for problem in problems:
            console.print(f"     {problem}", highlight=False)
    console.print(f"{len(targets) - bad}/{len(targets)} artifacts verified")
    if bad:
        raise typer.Exit(1)


@artifacts_app.command("export")
def artifacts_export(ref: str, dest: Path, store: StoreOpt = None, recipe: RecipeOpt = None) -> None:
    """Copy an artifact's files (verified, with their logical names) into DEST."""
    out = _store(store, recipe).fetch_dir(_ref(ref), dest)
    console.print(f"exported {ref} to {out}")


@artifacts_app.command("rm")
def artifacts_rm(ref: str, store: StoreOpt = None, recipe: RecipeOpt = None) -> None:
    """Remove an artifact (manifest first), e.g. a damaged one, so its stage rebuilds it."""
    _store(store, recipe).remove(_ref(ref))
    console.print(f"removed {ref}")


@artifacts_app.command("runs")
def artifacts_runs(
    store: StoreOpt = None,
    recipe: RecipeOpt = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Show one run")] = None,
) -> None:
    """List flow runs recorded in the store, or show one."""
    st = _store(store, recipe)
    if run_id:
        sys.stdout.write(json.dumps(st.read_run(_run_id(st, run_id)), indent=2) + "\n")
        return
    # Plain aligned lines, not a rich table: a table shrinks its columns to the terminal and would cut the ids
    # that `bard report RUN` and `--from-run RUN` need.
    sys.stdout.write("".join(line + "\n" for line in _run_lines(st.list_runs())))


def _run_lines(records: list[dict[str, Any]]) -> list[str]:
    """A header and one line per run: full id, name, status, start time, then each stage's status."""
    rows = [("run", "name", "status", "started", "stages")]
    for r in records:
        stages = ", ".join(f"{k}:{v['status']}" for k, v in r.get("stages", {}).items())
        rows.append((r["run_id"], r.get("name") or "", r.get("status") or "", r.get("started_at") or "", stages))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    aligned = (" ".join(cell.ljust(w + 1) for cell, w in zip(row[:4], widths, strict=True)) for row in rows)
    return [f"{left} {row[4]}".rstrip() for left, row in zip(aligned, rows, strict=True)]


def _run_id(st: ArtifactStore, run: str) -> str:
    """The full id of a run given as its id or a unique prefix; exits with the reason otherwise."""
    from bard_pipeline.infra.store import AmbiguousRunError, ArtifactNotFoundError

    try:
        return st.resolve_run(run)
    except (ArtifactNotFoundError, AmbiguousRunError) as exc:
        _fail(str(exc))


def _evaluation(st: ArtifactStore, key: str | None) -> ArtifactRef:
    """An evaluate artifact from its key (evaluate/<fp>; an experiment/<fp> report too), a run id (or unique
    prefix) that has one, or `latest` (also when KEY is omitted): the newest run with a committed evaluation."""
    from bard_pipeline.infra.store import AmbiguousRunError, ArtifactNotFoundError, ArtifactRef

    if key and key.startswith(("evaluate/", "experiment/")):
        return _ref(key)
    try:
        record = st.latest_run("evaluate") if key in (None, "latest") else st.read_run(st.resolve_run(key))
    except AmbiguousRunError as exc:
        _fail(str(exc))
    except ArtifactNotFoundError as exc:
        _fail(str(exc) if key in (None, "latest") else f"{exc}; an artifact is given as evaluate/<fingerprint>")
    if key in (None, "latest"):
        typer.echo(f"newest evaluation: run {record['run_id']} ({record.get('started_at', '')})", err=True)
    stage = record.get("stages", {}).get("evaluate")
    if not stage:
        _fail(f"run {record['run_id']} has no evaluate stage (it ran: {', '.join(record.get('stages', {}))})")
    return ArtifactRef.parse(stage["artifact"])


def _file(st, ref, name: str) -> bytes:
    entry = next((e for e in st.manifest(ref).files if e.name == name), None)
    if entry is None:
        _fail(f"{ref.key} has no {name}")
    return st.read_bytes(ref, entry)


@app.command()
def report(
    run: Annotated[
        str | None,
        typer.Argument(help="Run id or unique prefix, `latest` (the default), or an evaluate/<fingerprint> artifact"),
    ] = None,
    compare: Annotated[
        str | None, typer.Option("--compare", help="A second run (id, prefix or `latest`) or artifact to compare with")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder the HTML is written to")] = Path(".bard/reports"),
    open_browser: Annotated[bool, typer.Option("--open", help="Open the HTML in a browser")] = False,
    store: StoreOpt = None,
    recipe: RecipeOpt = None,
) -> None:
    """Print an evaluation report (markdown) and write its self-contained HTML; --compare shows two side by side."""
    from bard_core.report import render_comparison

    st = _store(store, recipe)
    first = _evaluation(st, run)
    out.mkdir(parents=True, exist_ok=True)
    if compare:
        second = _evaluation(st, compare)
        try:  # read_table parses from Arrow memory: pyarrow aborted at exit after parsing an io.BytesIO
            tables = [st.read_table(r, "metrics").to_pylist() for r in (first, second)]
        except KeyError as exc:
            _fail(str(exc.args[0]))
        names = (first.fingerprint[:8], second.fingerprint[:8])
        markdown, page = render_comparison(names, tables[0], tables[1])
        path = out / f"compare-{names[0]}-{names[1]}.html"
    else:
        markdown, page = _file(st, first, "report.md").decode(), _file(st, first, "report.html").decode()
        path = out / f"report-{first.fingerprint}.html"
    path.write_text(page, encoding="utf-8")
    sys.stdout.write(markdown + f"\nHTML: {path.resolve()}\n")
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@data_app.command("ls")
def data_ls() -> None:
    """List bundled datasets (use them with `{kind: bundled, name: NAME}` sources)."""
    from bard_core.problems import bundled_datasets

    table = Table("name", "kind", "grader", "file")
    for d in bundled_datasets().values():
        table.add_row(d.name, d.kind, d.grader.value, d.path.name)
    console.print(table)


register_stack_commands(app)
register_experiment_commands(app)
register_recipe_commands(app)
register_push_command(artifacts_app, _store)
register_export_command(app, _store)
register_serve_command(app, _store)

if __name__ == "__main__":
    app()
