"""Evaluation wall time: N toy problems x 4 budgets x k samples with the tiny student, through the
`evaluate` stage (Prefect + Ray Data actor pool), and the same requests on the engine called directly in
this process, for the ratio. Target (issue #5): 200 problems x 4 budgets x k=2 in <= 3 minutes on 2 cores;
issue #13: the stage at >= 0.85x the engine's own tokens/s.

It evaluates a checkpoint of an earlier toy run (default: the SFT student of the newest run with trained
checkpoints in the recipe's store, i.e. what `bard run configs/toy.yaml` produced; a store without one, as
on a fresh clone, gets one first, as `bard run RECIPE --until rl` would; `--fresh` starts from an empty
temporary store). `--model base` takes the random-init student instead, the worst case: it never closes
its think block, so every generation runs to its limit.

What the ratios are (both sides count the completion tokens their engine reported; the stage's and the
direct run's differ a little because sampling seeds follow the batches). The direct engine runs the
requests twice, before and after the stage, and its figures are the two runs together (tokens over
seconds summed), so a change in what else loads the machine weighs on both sides alike (its second run
is warm, torch's kernels already built in this process, which favours the direct side a little):

- ``eval_ratio`` (the headline): the stage's tokens / (the stage's wall time *minus its fixed start-up*),
  over the direct engine's tokens / its ``generate`` time. The stage's wall time is the manifest's
  ``wall_s``: from the stage starting to build until its artifact is committed, which holds reading the
  inputs, building the requests, starting Ray, the actor pool, writing every shard, the metrics with
  their bootstrap intervals and the report with its plots. The start-up taken out is fixed per stage and
  model, whatever the number of requests: starting the Ray runtime and importing Ray Data
  (``ray_start_s``; 0 when an earlier stage of the run started them) and the pool's time until its first
  replica had built its engine (``pool_startup_s``: actor process, imports, weights).
  The direct side's weight load is likewise not in its time. The direct engine computes with the torch
  threads a replica of the stage gets (the engine's `threads`, else the replica's whole Ray CPUs, which
  Ray hands the actor as OMP_NUM_THREADS), so the ratio measures the stage, not a thread setting.
- ``eval_ratio_all``: everything in, as a user waits for it: the stage's tokens over the whole
  `bard run --stages evaluate` flow's wall time (Prefect's ephemeral API, the flow, Ray, the pool, the
  stage), over the direct engine's tokens / (loading it + ``generate``).
- ``eval_cpu_ratio``: tokens per CPU second of the engine replicas (the actor's process time over its
  batches) over tokens per CPU second of the direct ``generate``: how well the stage batches, and almost
  blind to other load on the machine (wall-clock ratios are not, when others share the CPUs).
- ``evaluate_ratio`` (kept from before): tok/s over the pool's wall time (start-up included, Ray start and
  the rest of the stage not) against the direct tok/s.

The last line is machine-readable, ``eval_ratio`` first: `eval_ratio=... eval_ratio_all=...
eval_cpu_ratio=... evaluate_ratio=... evaluate_tok_s=... evaluate_direct_tok_s=... evaluate_wall_s=...
evaluate_startup_s=... evaluate_flow_wall_s=... evaluate_time_ratio=...` (the last: one direct run's
time over the stage's wall time).
Smallest size (CI): --fresh --recipe configs/smoke.yaml --problems 8 --k 1.

    .venv/bin/python benchmarks/evaluate_throughput.py [--problems 200] [--k 2] [--model sft] [--run RUN_ID]
"""

from __future__ import annotations

import argparse
import math
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


def trained_run(recipe: str, store_overrides: list[str], store: Any) -> str:
    """The newest run with committed SFT and RL checkpoints (the evaluation flow takes both from it); where
    there is none, one is trained first, exactly as `bard run RECIPE --until rl` would."""
    from bard_pipeline.flows.distill import distill
    from bard_pipeline.infra.store import ArtifactNotFoundError

    try:
        return str(store.latest_run("rl")["run_id"])
    except ArtifactNotFoundError:
        print(f"no run with trained checkpoints in {store.root}: training them first (bard run {recipe} --until rl)")
    state = distill(recipe=recipe, overrides=store_overrides, until="rl", return_state=True)
    record = store.read_run(str(state.state_details.flow_run_id))
    if record["status"] != "completed":
        raise SystemExit(f"the training run failed: {state.message}")
    return str(record["run_id"])


def run_stage(
    recipe: str, store_overrides: list[str], overrides: list[str], run_id: str | None, label: str
) -> dict[str, Any]:
    """The direct engine, then the stage, then the direct engine again (the two direct runs bracket the
    stage, so a change in the machine's load while it runs weighs on both sides alike)."""
    from bard_core.recipes import load_config
    from bard_pipeline.flows.distill import distill
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

    overrides = [*store_overrides, *overrides]
    cfg = load_config(recipe, overrides)
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    run_id = store.resolve_run(run_id) if run_id else trained_run(recipe, store_overrides, store)
    before = run_direct({"cfg": cfg, "store": store, "record": store.read_run(run_id)}, label)
    t0 = time.perf_counter()
    state = distill(recipe=recipe, overrides=overrides, stages=["evaluate"], from_run=run_id, return_state=True)
    flow_wall = time.perf_counter() - t0
    record = store.read_run(str(state.state_details.flow_run_id))
    if record["status"] != "completed":
        raise SystemExit(f"the evaluation run failed: {state.message}")
    ref = ArtifactRef.parse(record["stages"]["evaluate"]["artifact"])
    stage = {"store": store, "cfg": cfg, "record": record, "ref": ref, "manifest": store.manifest(ref),
             "flow_wall": flow_wall, "from_run": run_id}  # fmt: skip
    after = run_direct(stage, label)
    stage["direct"] = {key: before[key] + after[key] for key in before if key != "threads"}
    stage["direct"]["threads"] = after["threads"]
    return stage


def run_direct(stage: dict[str, Any], label: str) -> dict[str, float]:
    """The same budgeted requests on one HFEngine in this process: generate seconds and CPU seconds, load
    seconds, generations, completion tokens, torch threads."""
    import torch

    from bard_core.budget import render_user
    from bard_core.engine import GenerationRequest, SamplingParams
    from bard_core.prompting import load_prompt
    from bard_pipeline.infra.engines.hf import HFEngine
    from bard_pipeline.infra.local_cache import resolve_location
    from bard_pipeline.infra.models import MODEL_PREFIX
    from bard_pipeline.infra.store import ArtifactRef
    from bard_pipeline.tasks.training import checkpoint_location

    cfg, store, record = stage["cfg"], stage["store"], stage["record"]
    ev = cfg.evaluate
    key = record["stages"]["model:toy-student" if label == "base" else label]["artifact"]
    location = checkpoint_location(ArtifactRef.parse(key)).location if label != "base" else f"store:{key}"
    model_dir = resolve_location(location, cfg.store.root, cfg.store.endpoint_url, MODEL_PREFIX)
    problems = store.read_table(ArtifactRef.parse(record["stages"]["ingest"]["artifact"]), "problems").to_pylist()
    split = ev.benchmarks[0].split  # type: ignore[union-attr]
    problems = sorted((p for p in problems if p["split"] == split), key=lambda p: p["problem_id"])
    problems = problems[: ev.benchmarks[0].limit]
    template = load_prompt(cfg.budget.user_template)
    requests = []
    for p in problems:
        for budget in ev.budgets_tokens or cfg.budget.tiers_tokens:
            max_new = math.ceil(budget * ev.max_new_tokens_factor) + ev.answer_tokens
            params = SamplingParams(ev.samples_per_problem, ev.temperature, ev.top_p, max_new, ev.seed)
            messages = [{"role": "user", "content": render_user(template, p["problem"], budget)}]
            requests.append(GenerationRequest(f"{p['problem_id']}|{budget}", messages, params))  # type: ignore[arg-type]
    # The threads an engine replica of the stage computes with: the engine's `threads`, else what Ray grants
    # the actor (its OMP_NUM_THREADS: the replica's whole CPUs). HFEngine sets the former itself.
    torch.set_num_threads(ev.engine.threads or max(1, int(ev.resources.cpus_per_replica)))  # type: ignore[union-attr]
    t_load = time.perf_counter()
    engine = HFEngine(ev.engine.model_copy(update={"model": label}), str(model_dir))
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = engine.generate(requests)
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "load_s": t0 - t_load,
            "generations": sum(len(r.completions) for r in results),
            "tokens": sum(r.completion_tokens for r in results), "threads": torch.get_num_threads()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--recipe", default=str(REPO / "configs/toy.yaml"))
    parser.add_argument("--model", default="sft", choices=["base", "sft", "rl"], help="which checkpoint")
    parser.add_argument("--run", default=None, help="run whose checkpoints are evaluated (default: newest)")
    parser.add_argument("--store", default=None, help="store root (default: the recipe's)")
    parser.add_argument("--fresh", action="store_true", help="start from an empty temporary store (trains first)")
    parser.add_argument(
        "--split",
        default="train",
        help="ingested split to draw problems from (timing only; the toy test split is small)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        os.environ["PREFECT_HOME"] = f"{tmp}/prefect"
        store_root = f"file://{tmp}/store" if args.fresh else args.store
        overrides = [
            f"evaluate.models=[{args.model}]",
            "evaluate.truncation=null",
            f"evaluate.samples_per_problem={args.k}",
            f"evaluate.benchmarks=[{{kind: ingested, split: {args.split}, name: toy-{args.split}, "
            f"limit: {args.problems}}}]",
            f"evaluate.seed={int(time.time())}",  # a fresh fingerprint: the stage really runs
        ]
        stage = run_stage(args.recipe, [f"store.root={store_root}"] if store_root else [], overrides, args.run,
                          args.model)  # fmt: skip
    direct = stage["direct"]  # the two direct runs together
    direct_s, load_s, direct_tokens = direct["seconds"], direct["load_s"] / 2, direct["tokens"]
    direct_gens = direct["generations"] // 2
    manifest = stage["manifest"]
    wall, usage = manifest.timings["wall_s"], manifest.usage
    tokens = usage[f"{args.model}_completion_tokens"]
    pool = usage[f"{args.model}_pool_wall_s"]
    startup = usage.get("ray_start_s", 0.0) + usage.get(f"{args.model}_pool_startup_s", 0.0)
    generations = sum(manifest.rows[k] for k in manifest.rows if k.startswith("generations_"))
    budgets = len(stage["cfg"].evaluate.budgets_tokens or stage["cfg"].budget.tiers_tokens)
    direct_tok_s = direct_tokens / direct_s
    figures = {
        "eval_ratio": tokens / (wall - startup) / direct_tok_s,
        "eval_ratio_all": (tokens / stage["flow_wall"]) / (direct_tokens / (direct_s + 2 * load_s)),
        "eval_cpu_ratio": (tokens / usage[f"{args.model}_worker_cpu_s"]) / (direct_tokens / direct["cpu_s"]),
        "evaluate_ratio": (tokens / pool) / direct_tok_s,
        "evaluate_tok_s": tokens / pool,
        "evaluate_direct_tok_s": direct_tok_s,
        "evaluate_wall_s": wall,
        "evaluate_startup_s": startup,
        "evaluate_flow_wall_s": stage["flow_wall"],
        "evaluate_time_ratio": direct_s / 2 / wall,
    }
    print(f"\nevaluate: {args.problems} problems x {budgets} budgets x k={args.k}, model {args.model} of run "
          f"{stage['from_run']}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  stage wall time      : {wall:6.1f} s  (target <= 180 s; of it fixed start-up {startup:.1f} s: Ray "
          f"{usage.get('ray_start_s', 0.0):.1f} s, pool until its first engine was ready "
          f"{usage.get(f'{args.model}_pool_startup_s', 0.0):.1f} s; whole flow incl. Prefect "
          f"{stage['flow_wall']:.1f} s)")  # fmt: skip
    print(
        f"  through the stage    : {generations} generations, {tokens:.0f} tokens in {pool:.1f} s pool "
        f"= {tokens / pool:.1f} tok/s; {tokens / (wall - startup):.1f} tok/s over the stage less start-up"
    )  # fmt: skip
    print(
        f"  engine directly      : 2 x {direct_gens} generations (before and after), {direct_tokens} tokens in "
        f"{direct_s:.1f} s = {direct_tok_s:.1f} tok/s (load {load_s:.1f} s; {direct['threads']} torch threads)"
    )  # fmt: skip
    print(f"  ratio stage/direct   : {figures['eval_ratio']:.2f} (stage less start-up)   "
          f"{figures['eval_ratio_all']:.2f} (all in: flow vs load + generate)   "
          f"{figures['evaluate_ratio']:.2f} (pool)")  # fmt: skip
    print(" ".join(f"{key}={value:.6g}" for key, value in figures.items()))  # the machine-readable last line


if __name__ == "__main__":
    main()
