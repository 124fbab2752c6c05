"""Verified local copies of store artifacts (tokenizers, models), cached by fingerprint on each node."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from bard_pipeline.infra.reaper import system_tmp
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

STORE_SCHEME = "store:"  # a model location inside the artifact store: "store:model/<fingerprint>"


def cache_root() -> Path:
    return Path(os.environ.get("BARD_CACHE_DIR") or system_tmp() / "bard-cache")  # shared by runs: not their scratch


def local_artifact_dir(store: ArtifactStore, ref: ArtifactRef, prefix: str) -> Path:
    """Files of ``ref`` under ``prefix``, downloaded once per node and verified against the manifest."""
    cache = cache_root() / ref.stage / ref.fingerprint / prefix
    if cache.is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = cache.with_name(f"{cache.name}.tmp-{uuid.uuid4().hex}")
    store.fetch_dir(ref, staging, prefix=prefix)
    try:
        staging.rename(cache)  # atomic: concurrent actors either win or find the finished copy
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


def resolve_location(location: str, store_root: str, endpoint_url: str | None, prefix: str) -> str:
    """A local folder for a ``store:`` location; other locations (paths, hub ids) are returned as they are."""
    if not location.startswith(STORE_SCHEME):
        return location
    store = ArtifactStore(store_root, endpoint_url)
    return str(local_artifact_dir(store, ArtifactRef.parse(location[len(STORE_SCHEME) :]), prefix))
