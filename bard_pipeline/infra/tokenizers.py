"""The student tokenizer, as stored in the artifact store and cached on each worker's local disk."""

from __future__ import annotations

from bard_core.budget import HFTokenCounter
from bard_pipeline.infra.local_cache import STORE_SCHEME, resolve_location

TOKENIZER_PREFIX = "tokenizer"


def load_counter(store_root: str, endpoint_url: str | None, ref_key: str) -> HFTokenCounter:
    return HFTokenCounter.from_dir(resolve_location(STORE_SCHEME + ref_key, store_root, endpoint_url, TOKENIZER_PREFIX))
