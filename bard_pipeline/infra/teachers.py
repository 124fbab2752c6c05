"""Teacher sources the watcher polls, and what it has already seen (kept in the artifact store).

A source lists ``Teacher`` versions; a version the store's ``watcher/seen.json`` does not hold is new.
An unreachable source raises ``TeacherSourceError`` (the watcher logs it and checks the others).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bard_core.config import HFTeacherSource, OpenAITeacherSource, StoreTeacherSource, TeacherSource
from bard_pipeline.infra.store import ArtifactStore

SEEN = "watcher/seen.json"


class TeacherSourceError(RuntimeError):
    """A source that could not be checked (unreachable, refused, malformed)."""


@dataclass(frozen=True)
class Teacher:
    name: str  # short label: tags, run names
    model: str  # what the teacher engine loads: a catalog name, folder, hub id or served model id
    version: str  # identifies this release: a content hash, a model id, a commit
    source: str  # which source reported it

    def key(self) -> str:
        return f"{self.source}|{self.name}|{self.version}"


def source_id(source: TeacherSource) -> str:
    if isinstance(source, StoreTeacherSource):
        return f"store:{source.prefix}"
    if isinstance(source, OpenAITeacherSource):
        return f"openai:{source.base_url}"
    return f"hf:{source.model_id}@{source.revision}"


def register_teacher(
    store: ArtifactStore, name: str, model: str, revision: str | None, prefix: str = "teachers"
) -> str:
    """Announce a teacher in the store prefix (what `bard teachers register` does); returns its URI."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"teacher name {name!r} must be letters, digits, '.', '_' or '-' (it becomes a file name)")
    return store.put_document(f"{prefix}/{name}.json", {"name": name, "model": model, "revision": revision})


def _from_store(source: StoreTeacherSource, store: ArtifactStore) -> list[Teacher]:
    found = []
    for path, data in store.list_documents(source.prefix).items():
        try:
            doc = json.loads(data)
            name, model = str(doc["name"]), str(doc["model"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TeacherSourceError(
                f"{store.root}/{path}: not a teacher document ({exc}); expected {{name, model}}"
            ) from None
        found.append(Teacher(name, model, hashlib.sha256(data).hexdigest()[:16], source_id(source)))
    return found


def _from_openai(source: OpenAITeacherSource) -> list[Teacher]:
    url = source.base_url.rstrip("/") + "/models"
    headers = {}
    if source.api_key_env:
        key = os.environ.get(source.api_key_env)
        if not key:
            raise TeacherSourceError(f"{url}: environment variable {source.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = httpx.get(url, headers=headers, timeout=source.timeout_s)
        response.raise_for_status()
        ids = [str(m["id"]) for m in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        # the message names the URL, never the key
        raise TeacherSourceError(f"{url}: could not list models ({type(exc).__name__}: {exc})") from None
    pattern = re.compile(source.match) if source.match else None
    return [
        Teacher(re.sub(r"[^A-Za-z0-9_.-]+", "-", i), i, i, source_id(source))
        for i in ids
        if pattern is None or pattern.search(i)
    ]


def _from_hf(source: HFTeacherSource) -> list[Teacher]:
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(source.model_id, revision=source.revision)
    except Exception as exc:  # hub client errors are many types; all mean "could not check"
        raise TeacherSourceError(f"hf:{source.model_id}@{source.revision}: {type(exc).__name__}: {exc}") from None
    name = source.model_id.split("/")[-1]
    sha = str(info.sha)
    return [Teacher(f"{name}-{sha[:8]}", source.model_id, sha, source_id(source))]


def list_teachers(source: TeacherSource, store: ArtifactStore) -> list[Teacher]:
    if isinstance(source, StoreTeacherSource):
        return _from_store(source, store)
    if isinstance(source, OpenAITeacherSource):
        return _from_openai(source)
    return _from_hf(source)


def load_seen(store: ArtifactStore) -> dict[str, Any]:
    seen: dict[str, Any] = store.get_document(SEEN, default={"sources": {}, "teachers": {}})
    return seen


def mark_seen(seen: dict[str, Any], teacher: Teacher, run_id: str | None) -> None:
    seen["teachers"][teacher.key()] = {**asdict(teacher), "run_id": run_id}


def save_seen(store: ArtifactStore, seen: dict[str, Any]) -> None:
    store.put_document(SEEN, seen)
