"""`bard artifacts push`: the Hub cannot be reached here, so HfApi is replaced by a recorder of its calls;
the store, the export and the command line are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bard_pipeline.flows.cli import app
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter
from tests.support.hub import TOKEN

runner = CliRunner()


def _artifact(store: ArtifactStore, stage: str, files: dict[str, bytes]) -> ArtifactRef:
    ref = ArtifactRef(stage, "c" * 20)
    writer = ArtifactWriter(store, ref)
    for name, data in files.items():
        writer.write_bytes(name, data)
    writer.commit(inputs={}, config={}, prompts={})
    return ref


def test_a_model_is_pushed_as_its_model_folder(tmp_path: Path, hub: list[tuple[str, dict[str, Any]]]) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    files = {"model/config.json": b"{}", "model/runs/sft-c/events.out.tfevents.1": b"x", "train_log.json": b"[]"}
    ref = _artifact(store, "sft", files)
    args = ["artifacts", "push", ref.key, "me/bard-sft", "--private", "--revision", "v1", "--store", store.root]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output and "https://hub.test/me/bard-sft/commit/1" in result.output
    assert hub[0] == ("init", {"token": TOKEN})
    assert hub[1] == (
        "create_repo",
        {"repo_id": "me/bard-sft", "repo_type": "model", "private": True, "exist_ok": True},
    )
    assert hub[2] == (
        "create_branch",
        {"repo_id": "me/bard-sft", "branch": "v1", "repo_type": "model", "exist_ok": True},
    )
    name, upload = hub[3]
    assert name == "upload_folder" and upload["repo_type"] == "model" and upload["revision"] == "v1"
    assert upload["files"] == ["config.json", "runs/sft-c/events.out.tfevents.1"]  # model/ is the repo root
    assert upload["repo_id"] == "me/bard-sft" and ref.key in upload["commit_message"]


def test_a_dataset_is_pushed_whole_to_a_dataset_repo(tmp_path: Path, hub: list[tuple[str, dict[str, Any]]]) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    ref = _artifact(store, "materialize", {"README.md": b"---\nconfigs: []\n---\n", "stats.json": b"{}"})
    result = runner.invoke(app, ["artifacts", "push", ref.key, "me/bard-data", "--store", store.root])
    assert result.exit_code == 0, result.output
    assert [name for name, _ in hub] == ["init", "create_repo", "upload_folder"]  # no --revision: no branch
    assert hub[1][1]["private"] is False and hub[1][1]["repo_type"] == "dataset"
    assert hub[2][1]["files"] == ["README.md", "stats.json"] and hub[2][1]["revision"] is None


def test_push_refuses_without_a_token_or_a_pushable_stage(
    tmp_path: Path, hub: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    ingest = _artifact(store, "ingest", {"problems.parquet": b"x"})
    result = runner.invoke(app, ["artifacts", "push", ingest.key, "me/x", "--store", store.root])
    assert result.exit_code == 2 and "stage ingest is not pushable" in result.output
    monkeypatch.delenv("HF_TOKEN")
    result = runner.invoke(app, ["artifacts", "push", "sft/" + "c" * 20, "me/x", "--store", store.root])
    assert result.exit_code == 2 and "HF_TOKEN is not set" in result.output
    assert hub == []
