"""The artifact manifest: written last, it is the commit marker of an artifact.

An artifact without ``manifest.json`` does not exist. Readers only trust files the manifest lists,
and check their sha256 before use.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # logical name, e.g. "problems.parquet" or "shards/traces-00003.parquet"
    path: str  # physical path relative to the artifact folder (carries the content hash)
    sha256: str
    bytes: int
    rows: int | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_version: int = MANIFEST_VERSION
    stage: str
    fingerprint: str
    created_at: str
    files: tuple[FileEntry, ...]
    rows: dict[str, int] = Field(default_factory=dict)  # table name -> row count
    inputs: dict[str, str] = Field(default_factory=dict)  # input name -> "<stage>/<fingerprint>"
    config: dict[str, Any] = Field(default_factory=dict)  # the fingerprinted config
    prompts: dict[str, str] = Field(default_factory=dict)  # prompt ref -> sha256
    code: dict[str, str] = Field(default_factory=dict)  # package version, git commit
    packages: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)  # wall_s, cpu_s, ...
    usage: dict[str, float] = Field(default_factory=dict)  # requests, tokens, cost
    stats: dict[str, Any] = Field(default_factory=dict)  # stage summary (rejections, per-tier counts)
    io: dict[str, int] = Field(default_factory=dict)  # S3 requests and retries while it was written (writer.py)

    def file(self, name: str) -> FileEntry:
        for entry in self.files:
            if entry.name == name:
                return entry
        names = ", ".join(sorted(f.name for f in self.files))
        raise KeyError(f"artifact {self.stage}/{self.fingerprint} has no file {name!r}; it has: {names}")
