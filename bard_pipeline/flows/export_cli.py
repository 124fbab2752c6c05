"""`bard export REF DIR`: a trained student as a Hugging Face model folder (optionally pushed to the Hub).

REF is `sft/<fp>`, `rl/<fp>`, a run id (or a unique prefix of one) or `latest`: a run gives its rl model
when it trained one, else its sft one, with the run's evaluation in the model card. The folder is what
`bard_pipeline.infra.export.export_student` writes; `--push-to-hub` uploads it as `bard artifacts push`
does (token from HF_TOKEN only).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from bard_core.model_card import DEFAULT_LICENSE
from bard_pipeline.flows.options import PrivateOpt, RecipeOpt, StoreOpt

if TYPE_CHECKING:
    from bard_pipeline.infra.store import ArtifactStore

console = Console()


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def push_folder(folder: Path, repo_id: str, private: bool, source: str) -> str:
    """Upload an exported folder as a model repo (created when missing); returns the commit URL."""
    from huggingface_hub.errors import HfHubHTTPError

    from bard_pipeline.flows.push_cli import PushError, PushSpec, RepoType, hub_token, upload

    token = hub_token()
    spec = PushSpec(repo_id, RepoType.MODEL, folder, private, None, f"bard export: {source}")
    try:
        return upload(spec, token)
    except HfHubHTTPError as exc:  # the Hub's own message says which: 401, 403, 404...
        raise PushError(
            f"the Hub refused pushing {source} to model repo {repo_id}: {exc}. Check that HF_TOKEN has write "
            "access to that namespace"
        ) from None


def register(app: typer.Typer, open_store: Callable[[str | None, Path | None], ArtifactStore]) -> None:
    """Add `export` to the top-level `bard` app; ``open_store`` resolves --store/--recipe as elsewhere."""

    @app.command("export")
    def export(
        ref: Annotated[str, typer.Argument(help="sft/<fp>, rl/<fp>, a run id or unique prefix, or `latest`")],
        dest: Annotated[Path, typer.Argument(help="Folder to write (new or empty)")],
        push_to_hub: Annotated[
            str | None, typer.Option("--push-to-hub", help="Also upload the folder to this Hub model repo (HF_TOKEN)")
        ] = None,
        private: PrivateOpt = False,
        license_id: Annotated[
            str,
            typer.Option(
                "--license", help="The weights' licence for the card (a Hub base model's own licence carries over)"
            ),
        ] = DEFAULT_LICENSE,
        dataset_repo: Annotated[
            str | None, typer.Option("--dataset-repo", help="Hub repo of the training dataset, for the card")
        ] = None,
        store: StoreOpt = None,
        recipe: RecipeOpt = None,
    ) -> None:
        """Export a trained student as a Hugging Face model folder: weights, the budget contract in its chat
        template and bard_budget.json, generation_config.json, the evaluation's plots, a model card."""
        from bard_pipeline.flows.push_cli import PushError, hub_token
        from bard_pipeline.infra.export import ExportError, export_student, resolve_student
        from bard_pipeline.infra.store import AmbiguousRunError, ArtifactNotFoundError

        st = open_store(store, recipe)
        try:
            if push_to_hub:
                hub_token()  # a missing token fails before the export, not after it
            model, evaluation = resolve_student(st, ref)
            folder = export_student(
                st, model, dest, evaluation=evaluation, license=license_id, dataset_repo=dataset_repo,
                repo_id=push_to_hub,
            )  # fmt: skip
        except (ExportError, PushError, ArtifactNotFoundError, AmbiguousRunError, ValueError) as exc:
            _fail(f"cannot export {ref!r}: {exc}")
        card = f" with evaluation {evaluation.key}" if evaluation else " (no evaluation found: card without metrics)"
        console.print(f"exported {model.key}{card} to {folder}", highlight=False, soft_wrap=True)
        if push_to_hub:
            try:
                url = push_folder(folder, push_to_hub, private, model.key)
            except PushError as exc:
                _fail(str(exc))
            console.print(f"pushed {model.key} to {push_to_hub}: {url}", highlight=False, soft_wrap=True)
