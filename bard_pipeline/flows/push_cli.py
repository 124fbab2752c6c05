"""`bard artifacts push REF REPO`: a trained model or a dataset artifact to the Hugging Face Hub.

What goes up is what `bard artifacts export` writes, as a Hub repo expects it: a training artifact's
`model/` folder (weights, tokenizer, chat template, the TensorBoard files under `runs/`) as a model repo,
a `materialize` artifact (Parquet splits, the card with its `configs:` header, plot, stats) as a dataset
repo. The token comes from HF_TOKEN only (never a flag: it would land in shell history) and is never printed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bard_pipeline.flows.options import PrivateOpt, RecipeOpt, StoreOpt

if TYPE_CHECKING:
    from bard_pipeline.infra.store import ArtifactStore

console = Console()


class RepoType(str, Enum):
    MODEL = "model"
    DATASET = "dataset"


# Stage -> (Hub repo type, the artifact's folder that becomes the repo's root).
PUSHABLE: dict[str, tuple[RepoType, str]] = {
    "sft": (RepoType.MODEL, "model/"),
    "rl": (RepoType.MODEL, "model/"),
    "materialize": (RepoType.DATASET, ""),
}


class PushError(ValueError):
    """An artifact or an environment that cannot be pushed; the message says what to change."""


@dataclass(frozen=True)
class PushSpec:
    """One upload: which folder goes to which repo, and how."""

    repo_id: str
    repo_type: RepoType
    folder: Path
    private: bool
    revision: str | None
    commit_message: str


def hub_token() -> str:
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise PushError(
            "HF_TOKEN is not set: export a Hugging Face token with write access (huggingface.co/settings/tokens); "
            "it is read from the environment only"
        )
    return token


def upload(spec: PushSpec, token: str) -> str:
    """Create the repo (and the branch ``revision``) when missing, then upload the folder in one commit;
    returns the commit's URL. Network-bound: the tests check its calls, not the Hub."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    kind = spec.repo_type.value
    api.create_repo(spec.repo_id, repo_type=kind, private=spec.private, exist_ok=True)
    if spec.revision:
        api.create_branch(spec.repo_id, branch=spec.revision, repo_type=kind, exist_ok=True)
    info = api.upload_folder(
        repo_id=spec.repo_id,
        folder_path=str(spec.folder),
        repo_type=kind,
        revision=spec.revision,
        commit_message=spec.commit_message,
    )
    return str(getattr(info, "commit_url", info))


def push_artifact(store: ArtifactStore, key: str, repo_id: str, private: bool, revision: str | None) -> str:
    """Export artifact ``key`` (verified) to a temporary folder and upload what its stage publishes."""
    from bard_pipeline.infra.store import ArtifactRef

    ref = ArtifactRef.parse(key)
    if ref.stage not in PUSHABLE:
        raise PushError(
            f"{key}: stage {ref.stage} is not pushable; push a model (sft/..., rl/...) or a dataset (materialize/...)"
        )
    token = hub_token()  # before the download: a missing token fails at once
    repo_type, prefix = PUSHABLE[ref.stage]
    with tempfile.TemporaryDirectory(prefix="bard-push-") as tmp:
        folder = store.fetch_dir(ref, Path(tmp), prefix)
        if not any(folder.iterdir()):
            raise PushError(f"{key}: no files under {prefix or '/'} to push")
        spec = PushSpec(repo_id, repo_type, folder, private, revision, f"bard: {ref.key}")
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return upload(spec, token)
        except HfHubHTTPError as exc:  # 401/403/404 and the like: the Hub's own message says which
            raise PushError(
                f"the Hub refused pushing {key} to {repo_type.value} repo {repo_id}: {exc}. Check that HF_TOKEN "
                "has write access to that namespace"
            ) from None


def register(artifacts_app: typer.Typer, open_store: Callable[[str | None, Path | None], ArtifactStore]) -> None:
    """Add `push` to the `bard artifacts` group; ``open_store`` resolves --store/--recipe as its siblings do."""

    @artifacts_app.command("push")
    def push(
        ref: Annotated[str, typer.Argument(help="STAGE/FINGERPRINT of an sft, rl or materialize artifact")],
        repo: Annotated[str, typer.Argument(help="Hub repo id, e.g. my-org/bard-qwen3-8b-sft")],
        private: PrivateOpt = False,
        revision: Annotated[
            str | None, typer.Option("--revision", help="Branch to commit to (created when missing; default main)")
        ] = None,
        store: StoreOpt = None,
        recipe: RecipeOpt = None,
    ) -> None:
        """Upload a model (sft/rl) or a dataset (materialize) artifact to the Hugging Face Hub (HF_TOKEN)."""
        try:
            url = push_artifact(open_store(store, recipe), ref, repo, private, revision)
        except (PushError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        console.print(f"pushed {ref} to {repo}: {url}", highlight=False, soft_wrap=True)
