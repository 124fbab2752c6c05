"""Content addresses of artifacts: same stage, config, prompts and inputs -> same fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

FINGERPRINT_CHARS = 20


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, enums as their values, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def _default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}: {value!r}")


def fingerprint(
    stage: str,
    stage_version: int,
    config: Mapping[str, Any],
    prompts: Mapping[str, str],
    inputs: Mapping[str, str],
) -> str:
    """Hash of everything that decides an artifact's content.

    ``prompts`` maps prompt refs to their content hashes; ``inputs`` maps input names to the
    fingerprints of upstream artifacts. ``stage_version`` is bumped when a stage's logic changes
    what it writes, so old artifacts are not silently reused.
    """
    payload = {
        "stage": stage,
        "stage_version": stage_version,
        "config": config,
        "prompts": dict(prompts),
        "inputs": dict(inputs),
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:FINGERPRINT_CHARS]
