"""Engine registry: the one place where an engine kind in a config becomes an engine object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bard_core.config import EngineConfig, OracleEngineConfig
from bard_core.engine import Engine, EngineKind
from bard_core.toy.oracle import ORACLE_VERSION, OracleEngine, OracleSettings


def _oracle(cfg: Any) -> Engine:
    assert isinstance(cfg, OracleEngineConfig)
    return OracleEngine(OracleSettings(**cfg.model_dump(exclude={"kind"})))


ENGINES: dict[EngineKind, Callable[[Any], Engine]] = {
    EngineKind.ORACLE: _oracle,
}


def build_engine(cfg: EngineConfig) -> Engine:
    kind = EngineKind(cfg.kind)
    if kind not in ENGINES:
        raise ValueError(f"no engine registered for kind {kind.value!r}; available: {[k.value for k in ENGINES]}")
    return ENGINES[kind](cfg)


# Engines whose outputs are defined by code in this repository carry a version in their fingerprint.
IMPLEMENTATION_VERSIONS: dict[EngineKind, int] = {EngineKind.ORACLE: ORACLE_VERSION}


def engine_identity(cfg: EngineConfig) -> dict[str, Any]:
    """What identifies an engine's outputs, for stage fingerprints: its config plus any code version."""
    identity = cfg.model_dump(mode="json")
    version = IMPLEMENTATION_VERSIONS.get(EngineKind(cfg.kind))
    if version is not None:
        identity["implementation_version"] = version
    return identity
