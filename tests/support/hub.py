"""The Hugging Face Hub cannot be reached from tests: HfApi is replaced by a recorder of its calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

TOKEN = "hf_test_token_not_a_secret"


class RecordingHfApi:
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> Any:
        folder = Path(kwargs["folder_path"])  # a temporary export: list it while it exists
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kwargs, "files": files}))
        return type("CommitInfo", (), {"commit_url": f"https://hub.test/{kwargs['repo_id']}/commit/1"})()
