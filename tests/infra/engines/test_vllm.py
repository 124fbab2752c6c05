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

    # One blocking LLM.generate per batch (the overlapping engine loop is tested through the pool below).
    cfg = VLLMEngineConfig(
        model="toy",
        python=str(vllm_python),
        dtype="float32",
        max_model_len=256,
        enforce_eager=True,
        batches_in_flight=1,
    )
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


def test_batches_overlap_in_one_engine_through_the_actor_pool(vllm_python: Path, toy_model_dir: Path) -> None:
    """Three batches of one shard on one replica: the first asks for long answers, the other two for short
    ones (and one prompt too long for the context). With overlapping batches the short ones come back while
    the long one is still generating; one LLM.generate per batch would return them after it. The shard
    still arrives whole, in row order, with every row's completions."""
    import time

    import pyarrow as pa

    from bard_core.config import RayConfig
    from bard_core.engine import Usage
    from bard_pipeline.infra.actor_pool import run_actor_pool
    from bard_pipeline.infra.ray_runtime import RaySession

    cfg = VLLMEngineConfig(model="toy", python=str(vllm_python), dtype="float32", max_model_len=256, enforce_eager=True)
    assert cfg.batches_in_flight > 1 and "batches_in_flight" not in cfg.fingerprint_dump()
    schema = pa.schema([("tokens", pa.int64()), ("texts", pa.list_(pa.string())), ("error", pa.string()),
                        ("done_at", pa.float64())])  # fmt: skip

    class Job:  # defined here, so Ray pickles it by value into the vLLM environment
        def __init__(self) -> None:
            self.schema = schema
            self.engine = build_engine(cfg, EngineRuntime(model_path=str(toy_model_dir)))
            self.backend = self.engine.backend

        def process(self, rows: list[dict]) -> tuple[list[list[dict]], Usage]:  # type: ignore[type-arg]
            requests = [
                GenerationRequest(
                    f"r{row['i']}",
                    [{"role": "user", "content": "word " * 400 if row["long_prompt"] else f"What is {row['i']} + 2?"}],
                    SamplingParams(n=2, temperature=0.8, top_p=1.0, max_new_tokens=row["max_new_tokens"], seed=3),
                )
                for row in rows
            ]
            results = self.engine.generate(requests)
            done_at = time.time()
            out = [
                [
                    {
                        "tokens": r.completion_tokens,
                        "texts": [c.text for c in r.completions],
                        "done_at": done_at,
                        "error": r.error_kind.value if r.error_kind else None,
                    }
                ]
                for r in results
            ]
            return out, Usage()

    rows = [{"i": i, "max_new_tokens": 200 if i < 4 else 8, "long_prompt": i == 11} for i in range(12)]
    shards: dict[int, pa.Table] = {}
    session = RaySession(RayConfig(num_cpus=2))
    session.ensure()
    try:
        options = actor_options(cfg, ResourcesConfig(cpus_per_replica=1.0))
        assert options["max_concurrency"] == cfg.batches_in_flight
        run_actor_pool(
            {0: pa.Table.from_pylist(rows)}, Job, 1, 4, options, lambda i, t, u, b: shards.update({i: t}), "overlap"
        )
    finally:
        session.shutdown()
    out = shards[0].to_pylist()
    assert len(out) == 12
    long, short, rejected = out[:4], out[4:11], out[11]
    assert rejected["error"] == "context_length" and not rejected["texts"]
    assert all(r["error"] is None and len(r["texts"]) == 2 and 2 <= r["tokens"] <= 16 for r in short)
    assert len({t for r in out for t in r["texts"]}) > 1
    assert max(r["tokens"] for r in long) > 60, "the long batch must outlast the short ones, or this tests nothing"
    assert max(r["done_at"] for r in short) < long[0]["done_at"], "short batches waited for the long batch"


def test_vllm_serve_through_the_openai_engine(vllm_server: str) -> None:
    engine = OpenAIEngine(OpenAIEngineConfig(model="toy", base_url=vllm_server, api_key_env=None, max_concurrency=4))
    results = engine.generate(_requests())
    _check(results)
    assert "maximum context length" in (results[-1].error or "") or "max_model_len" in (results[-1].error or "")
    assert all(r.attempts == 1 for r in results)
