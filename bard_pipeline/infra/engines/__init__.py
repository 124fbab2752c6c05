"""Engine registry: the one place where `engine.kind` in a config becomes an engine object.

Engines are built inside their Ray actor (``EngineWorker.build`` in infra.jobs) from the config plus
an ``EngineRuntime``: the local model folder (or hub id) and the stage's query-budget actor.
Heavy backends are imported only by the factory that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from bard_core.config import (
    EngineConfig,
    HFEngineConfig,
    OpenAIEngineConfig,
    OracleEngineConfig,
    ResourcesConfig,
    VLLMEngineConfig,
)
from bard_core.engine import Engine, EngineKind
from bard_core.toy.oracle import ORACLE_VERSION, OracleEngine, OracleSettings


@dataclass(frozen=True)
class EngineRuntime:
    model_path: str | None = None  # local folder or hub id, for engines that load weights
    revision: str | None = None
    budget_actor: Any = None  # handle of the Ray actor holding the stage's query budget


def _oracle(cfg: OracleEngineConfig) -> Engine:
    # The price stays a PriceConfig (model_dump would make it a dict).
    return OracleEngine(OracleSettings(**cfg.model_dump(exclude={"kind", "price"}), price=cfg.price))


def _hf(cfg: HFEngineConfig, runtime: EngineRuntime) -> Engine:
    from bard_pipeline.infra.engines.hf import HFEngine

    return HFEngine(cfg, _weights(cfg, runtime), runtime.revision)


def _vllm(cfg: VLLMEngineConfig, runtime: EngineRuntime) -> Engine:
    from bard_pipeline.infra.engines.vllm import VLLMEngine

    return VLLMEngine(cfg, _weights(cfg, runtime), runtime.revision)


def _openai(cfg: OpenAIEngineConfig, runtime: EngineRuntime) -> Engine:
    from bard_pipeline.infra.engines.budget import RayQueryBudget
    from bard_pipeline.infra.engines.openai import OpenAIEngine

    return OpenAIEngine(cfg, RayQueryBudget(runtime.budget_actor) if runtime.budget_actor else None)


def _weights(cfg: EngineConfig, runtime: EngineRuntime) -> str:
    if not runtime.model_path:  # a caller bug: the engine stage resolves the model before building
        raise ValueError(f"engine kind {cfg.kind!r} loads weights but no model path was given")
    return runtime.model_path


# Engines whose outputs are defined by code in this repository carry a version in their fingerprint.
IMPLEMENTATION_VERSIONS: dict[EngineKind, int] = {EngineKind.ORACLE: ORACLE_VERSION}


def build_engine(cfg: EngineConfig, runtime: EngineRuntime | None = None) -> Engine:
    """The engine of ``cfg`` (one branch per ``engine.kind``; a new kind that is not handled fails mypy)."""
    runtime = runtime or EngineRuntime()
    match cfg:
        case OracleEngineConfig():
            return _oracle(cfg)
        case HFEngineConfig():
            return _hf(cfg, runtime)
        case VLLMEngineConfig():
            return _vllm(cfg, runtime)
        case OpenAIEngineConfig():
            return _openai(cfg, runtime)
        case _:
            assert_never(cfg)


def loads_weights(cfg: EngineConfig) -> bool:
    return isinstance(cfg, (HFEngineConfig, VLLMEngineConfig))


def engine_identity(cfg: EngineConfig, model_identity: str | None = None) -> dict[str, Any]:
    """What identifies an engine's outputs, for stage fingerprints (never secrets: keys live in the env)."""
    identity = cfg.fingerprint_dump()  # execution-only fields (vLLM's `python`) are marked in the config
    version = IMPLEMENTATION_VERSIONS.get(EngineKind(cfg.kind))
    if version is not None:
        identity["implementation_version"] = version
    if model_identity is not None:
        identity["model_identity"] = model_identity
    return identity


def actor_options(cfg: EngineConfig, resources: ResourcesConfig) -> dict[str, Any]:
    """Ray options for an engine replica: CPUs/GPUs, and for vLLM its environment."""
    options: dict[str, Any] = {"num_cpus": resources.cpus_per_replica}
    if resources.gpus_per_replica:
        options["num_gpus"] = resources.gpus_per_replica
    if isinstance(cfg, VLLMEngineConfig):
        from bard_pipeline.infra.engines.vllm import ACTOR_ENV

        runtime_env: dict[str, Any] = {"env_vars": dict(ACTOR_ENV)}
        if cfg.python:
            python = Path(cfg.python).expanduser()
            if not python.is_file():
                raise FileNotFoundError(
                    f"engine.python {cfg.python} does not exist; create the vLLM environment (./bootstrap.sh vllm) "
                    "or unset it when vLLM is installed in this environment"
                )
            runtime_env["py_executable"] = str(python.absolute())
        options["runtime_env"] = runtime_env
        if cfg.batches_in_flight > 1:  # the actor pool then runs that many batches per replica at once
            options["max_concurrency"] = cfg.batches_in_flight
    return options
