"""vLLM for real, on CPU: offline `vllm.LLM` in a Ray actor running in the separate vLLM environment,
and `vllm serve` as an OpenAI-compatible server reached by the OpenAI engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.config import OpenAIEngineConfig, ResourcesConfig, VLLMEngineConfig
from bard_core.engine import ErrorKind, GenerationRequest, SamplingParams
from bard_pipeline.infra.engines import EngineRuntime, actor_options, build_engine
from bard_pipeline.infra.engines.openai import OpenAIEngine

pytestmark = pytest.mark.vllm


def _requests() -> list[GenerationRequest]:
    params = SamplingParams(n=2, temperature=0.8, top_p=1.0, max_new_tokens=24, seed=3)
    ok = [GenerationRequest(f"r{i}", [{"role": "user", "content": f"What is {i} + 2?"}], params) for i in range(6)]
    long = GenerationRequest("long", [{"role": "user", "content": "word " * 400}], params)
    return [*ok, long]


def _check(results: list, expect_backend: str | None = None) -> None:  # type: ignore[type-arg]
    *ok, long = results
    for result in ok:
        assert result.error is None and len(result.completions) == 2 and result.prompt_tokens > 5
        assert all(1 <= c.completion_tokens <= 24 and c.finish_reason in ("stop", "length") for c in result.completions)
    assert len({c.text for r in ok for c in r.completions}) > 1
    assert long.error_kind is ErrorKind.CONTEXT_LENGTH and not long.completions


def test_offline_vllm_in_a_ray_actor_from_its_own_environment(vllm_python: Path, toy_model_dir: Path) -> None:
    import ray

    from bard_core.config import RayConfig
    from bard_pipeline.infra.ray_runtime import RaySession

    cfg = VLLMEngineConfig(model="toy", python=str(vllm_python), dtype="float32", max_model_len=256, enforce_eager=True)
    session = RaySession(RayConfig(num_cpus=2))
    session.ensure()
    try:

        @ray.remote
        class Replica:
            def __init__(self) -> None:
                self.engine = build_engine(cfg, EngineRuntime(model_path=str(toy_model_dir)))

            def run(self, requests: list[GenerationRequest]) -> tuple[str, list]:  # type: ignore[type-arg]
                return self.engine.backend, self.engine.generate(requests)

        options = actor_options(cfg, ResourcesConfig(cpus_per_replica=1.0))
        replica = Replica.options(**options).remote()  # type: ignore[attr-defined]
        backend, results = ray.get(replica.run.remote(_requests()), timeout=600)
    finally:
        session.shutdown()
    assert backend.startswith("vllm 0.") and str(vllm_python) in backend
    _check(results)


def test_vllm_serve_through_the_openai_engine(vllm_server: str) -> None:
    engine = OpenAIEngine(OpenAIEngineConfig(model="toy", base_url=vllm_server, api_key_env=None, max_concurrency=4))
    results = engine.generate(_requests())
    _check(results)
    assert "maximum context length" in (results[-1].error or "") or "max_model_len" in (results[-1].error or "")
    assert all(r.attempts == 1 for r in results)
