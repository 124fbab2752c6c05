"""`bard up|status|down|serve-deployments` and `bard teachers register`: the local stack, the deployments it
serves, and optionally a student server (`bard up --student REF`)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bard_pipeline.infra.env import DEFAULTS
from bard_pipeline.infra.stack import HOST, Stack, StackError

console = Console()
StateDir = Annotated[Path, typer.Option("--state-dir", help="Where PIDs, logs and the Prefect database live")]
DEFAULT_STATE = Path(".bard/stack")
S3_BUCKET = "bard"


def _env(state_dir: Path) -> dict[str, str]:
    env = {**DEFAULTS, **os.environ}
    env.update(PREFECT_HOME=str((state_dir / "prefect").resolve()), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another one
    return env


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.3)
    raise StackError(f"nothing listens on {HOST}:{port} after {timeout_s:.0f} s")


def start_server(stack: Stack, port: int) -> None:
    """The Prefect server (API + UI) of a stack, on its database in the state folder; also what brings a
    stopped one back (the runs it knew continue: see the operations section of the README)."""
    api = f"http://{HOST}:{port}/api"
    server = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    # The UI asks its own settings where the API is; without these it points at the default port 4200.
    server_env = {**_env(stack.state_dir), "PREFECT_UI_API_URL": api, "PREFECT_SERVER_API_HOST": HOST,
                  "PREFECT_SERVER_API_PORT": str(port)}  # fmt: skip
    stack.start("prefect-server", server, server_env, port, f"{api}/health", timeout_s=180)


def up(
    state_dir: StateDir = DEFAULT_STATE,
    port: Annotated[int, typer.Option(help="Prefect server (API + UI) port")] = 4200,
    s3: Annotated[bool, typer.Option("--s3", help="Also start an S3 server (moto) with a bucket 'bard'")] = False,
    s3_port: Annotated[int, typer.Option(help="S3 server port")] = 9000,
    ray: Annotated[bool, typer.Option("--ray", help="Also start a Ray head (join it with ray.address=auto)")] = False,
    ray_port: Annotated[int, typer.Option(help="Ray GCS port")] = 6380,
    recipe: Annotated[str, typer.Option(help="Default recipe of the deployments")] = "toy",
    watch_cron: Annotated[str, typer.Option(help="Teacher watcher schedule ('' for none)")] = "*/15 * * * *",
    student: Annotated[
        str | None, typer.Option(help="Also serve this student (sft/<fp>, rl/<fp>, run id or `latest`): bard serve")
    ] = None,
    student_port: Annotated[int, typer.Option(help="Port of the student's OpenAI-compatible API")] = 8000,
    student_store: Annotated[
        str | None, typer.Option(help="Store root URL the student is read from (default: the recipe's)")
    ] = None,
) -> None:
    """Start the local stack on 127.0.0.1: Prefect server + UI, the deployments' serve process, optionally
    S3, a Ray head and a student server (`bard serve`). PIDs are recorded; `bard down` stops exactly those."""
    stack, env, py = Stack(state_dir), _env(state_dir), sys.executable
    api = f"http://{HOST}:{port}/api"
    try:
        start_server(stack, port)
        if s3:
            stack.start("s3", [py, "-m", "moto.server", "-H", HOST, "-p", str(s3_port)], env, s3_port,
                        f"http://{HOST}:{s3_port}/moto-api/")  # fmt: skip
            _create_bucket(f"http://{HOST}:{s3_port}")
        if ray:
            ray_bin = str(Path(py).parent / "ray")
            head = [ray_bin, "start", "--head", "--block", "--port", str(ray_port), "--node-ip-address", HOST,
                    "--dashboard-host", HOST, "--disable-usage-stats"]  # fmt: skip
            stack.start("ray-head", head, {**env, "RAY_AUTH_MODE": "disabled"}, ray_port, None)
            _wait_port(ray_port, 90)
        serve = [py, "-m", "bard_pipeline.flows.deployments", "--recipe", recipe, "--watch-cron", watch_cron]
        serve_env = {**env, "PREFECT_API_URL": api}
        if s3:  # the local S3 server takes any credentials; the user's own, if set, win
            serve_env = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local-secret", **serve_env}
        stack.start("serve", serve, serve_env, None, f"{api}/deployments/name/bard-distill/distill", timeout_s=180)
        if student:
            _start_student(stack, env, student, student_port, student_store, recipe)
    except StackError as exc:
        stack.stop()
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    status(state_dir)
    console.print(f"\nexport PREFECT_API_URL={api}    # UI: http://{HOST}:{port}", highlight=False)
    if student:
        console.print(f"student: OpenAI base_url=http://{HOST}:{student_port}/v1 (model bard-student)", highlight=False)
    if s3:
        console.print(
            f"store on S3: store.root=s3://{S3_BUCKET}/store store.endpoint_url=http://{HOST}:{s3_port} "
            "(any AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
            highlight=False,
        )


def _start_student(
    stack: Stack, env: dict[str, str], ref: str, port: int, store: str | None, recipe: str
) -> None:  # fmt: skip
    """`bard serve REF` as a component: it exports the student and runs vLLM (its log: student.log)."""
    command = [sys.executable, "-m", "bard_pipeline.flows.cli", "serve", ref, "--port", str(port)]
    command += ["--store", store] if store else ["--recipe", recipe]  # the recipe's store, endpoint included
    stack.start("student", command, env, port, f"http://{HOST}:{port}/health", timeout_s=600)


def _create_bucket(endpoint: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="local", secret="local-secret")
    if not fs.exists(S3_BUCKET):
        fs.mkdir(S3_BUCKET)


def status(state_dir: StateDir = DEFAULT_STATE) -> None:
    """Show the stack's components: PID, running or not, URL, log file."""
    rows = Stack(state_dir).status()
    if not rows:
        console.print(f"no stack recorded in {state_dir} (start one with `bard up`)")
        return
    table = Table("component", "pid", "state", "url", "log")
    for r in rows:
        table.add_row(r["name"], str(r["pid"]), "running" if r["alive"] else "[red]stopped[/red]", r["url"], r["log"])
    console.print(table)


def down(state_dir: StateDir = DEFAULT_STATE) -> None:
    """Stop the stack `bard up` started (by recorded PID and process tree; nothing else is touched)."""
    stopped = Stack(state_dir).stop()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


def serve_deployments(
    recipe: Annotated[str, typer.Option(help="Default recipe of the deployments")] = "toy",
    watch_cron: Annotated[str, typer.Option(help="Teacher watcher schedule ('' for none)")] = "*/15 * * * *",
) -> None:
    """Serve the deployments (distill, single stage, teacher watcher) in this process (needs PREFECT_API_URL)."""
    from prefect import serve as prefect_serve

    from bard_pipeline.flows.deployments import deployments

    prefect_serve(*deployments(recipe, watch_cron or None))


teachers_app = typer.Typer(no_args_is_help=True, help="Announce teachers to the watcher.")


@teachers_app.command("register")
def teachers_register(
    name: Annotated[str, typer.Argument(help="Short name, e.g. qwq-32b-v2")],
    model: Annotated[str, typer.Argument(help="What the teacher engine loads: catalog name, folder or hub id")],
    revision: Annotated[str | None, typer.Option(help="Hub revision or checkpoint version")] = None,
    recipe: Annotated[Path, typer.Option(help="Recipe whose store (and watch prefix) is used")] = Path("toy"),
) -> None:
    """Register a teacher under the store's watch prefix; the next watcher run starts a distillation with it."""
    from bard_core.config import StoreTeacherSource
    from bard_core.recipes import load_config
    from bard_pipeline.infra.store import ArtifactStore
    from bard_pipeline.infra.teachers import register_teacher

    cfg = load_config(recipe)
    prefix = next((s.prefix for s in cfg.watch.sources if isinstance(s, StoreTeacherSource)), "teachers")
    uri = register_teacher(ArtifactStore(cfg.store.root, cfg.store.endpoint_url), name, model, revision, prefix)
    console.print(f"registered {name} -> {model} at {uri}", highlight=False)


def register(app: typer.Typer) -> None:
    for command in (up, status, down):
        app.command()(command)
    app.command("serve-deployments")(serve_deployments)
    app.add_typer(teachers_app, name="teachers")
