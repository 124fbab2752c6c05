"""The student tokenizer, as stored in the artifact store and cached on each worker's local disk."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from bard_core.budget import HFTokenCounter
from infra.store import ArtifactRef, ArtifactStore

TOKENIZER_PREFIX = "tokenizer"


def local_tokenizer_dir(store: ArtifactStore, ref: ArtifactRef) -> Path:
    """Verified local copy of a tokenizer artifact, cached by fingerprint (shared by actors on a node)."""
    cache = Path(tempfile.gettempdir()) / "bard-cache" / ref.stage / ref.fingerprint
    if cache.is_dir():
        return cache
    staging = cache.with_name(f"{cache.name}.tmp-{uuid.uuid4().hex}")
    store.fetch_dir(ref, staging, prefix=TOKENIZER_PREFIX)
    try:
        staging.rename(cache)  # atomic: concurrent actors either win or find the finished copy
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


def load_counter(store_root: str, endpoint_url: str | None, ref_key: str) -> HFTokenCounter:
    store = ArtifactStore(store_root, endpoint_url)
    return HFTokenCounter.from_dir(local_tokenizer_dir(store, ArtifactRef.parse(ref_key)))
