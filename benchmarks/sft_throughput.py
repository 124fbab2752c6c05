"""SFT tokens/s through the stage (Prefect + Ray Train) divided by plain TRL SFTTrainer on the same model,
data and arguments, in the same run.

The stage figure is TRL's own count of trained tokens over TRL's own train runtime inside the Ray Train
worker (what a long production run converges to); the stage's whole wall time, with Ray Train's fixed
start-up and the checkpoint upload, is printed beside it. Target (issue #4): ratio >= 0.9.

    .venv/bin/python benchmarks/sft_throughput.py [--steps 150] [--recipe configs/toy.yaml]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infra.env import apply_defaults  # noqa: E402

apply_defaults()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--recipe", default=str(REPO / "configs/toy.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        os.environ["PREFECT_HOME"] = f"{tmp}/prefect"
        overrides = [f"store.root=file://{tmp}/store", f"sft.trl.max_steps={args.steps}", "sft.probe.problems=0"]
        stage = run_stage(args.recipe, overrides)
        direct = run_direct(args.recipe, overrides, stage)
    cpus = stage["section"].resources.cpus_per_worker
    print(f"\nSFT, {args.steps} steps, recipe {Path(args.recipe).name}, {os.cpu_count()} CPUs (worker: {cpus:g} CPUs)")
    print(
        f"  stage (Prefect + Ray Train): {stage['tokens']:9.0f} tokens in {stage['runtime']:6.1f} s train runtime "
        f"= {stage['tokens'] / stage['runtime']:7.1f} tok/s   (stage wall {stage['wall']:.1f} s)"
    )
    print(
        f"  plain TRL SFTTrainer       : {direct['tokens']:9.0f} tokens in {direct['runtime']:6.1f} s train runtime "
        f"= {direct['tokens'] / direct['runtime']:7.1f} tok/s"
    )
    ratio = (stage["tokens"] / stage["runtime"]) / (direct["tokens"] / direct["runtime"])
    wall_ratio = (stage["tokens"] / stage["wall"]) / (direct["tokens"] / direct["runtime"])
    print(f"  ratio stage/plain: {ratio:.2f}   (on the stage's whole wall time: {wall_ratio:.2f})")


def run_stage(recipe: str, overrides: list[str]) -> dict:  # type: ignore[type-arg]
    from bard_core.recipes import load_config
    from flows.distill import distill
    from infra.store import ArtifactRef, ArtifactStore

    state = distill(recipe=recipe, overrides=overrides, until="sft", return_state=True)
    cfg = load_config(recipe, overrides)
    store = ArtifactStore(cfg.store.root)
    record = store.read_run(str(state.state_details.flow_run_id))
    if record["status"] != "completed":
        raise SystemExit(f"the pipeline run failed: {state.message}")
    manifest = store.manifest(ArtifactRef.parse(record["stages"]["sft"]["artifact"]))
    return {
        "tokens": manifest.usage["train_tokens"],
        "runtime": manifest.usage["train_runtime_s"],
        "wall": manifest.timings["wall_s"],
        "store": store,
        "record": record,
        "section": cfg.sft,
    }


def run_direct(recipe: str, overrides: list[str], stage: dict) -> dict:  # type: ignore[type-arg]
    import json

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from infra.local_cache import local_artifact_dir
    from infra.store import ArtifactRef
    from infra.training import record_key, trl_args

    store, record, section = stage["store"], stage["record"], stage["section"]
    torch.set_num_threads(int(section.resources.cpus_per_worker))
    model_dir = local_artifact_dir(store, ArtifactRef.parse(record["stages"]["model:toy-student"]["artifact"]), "model")
    sft_ref = ArtifactRef.parse(record["stages"]["sft"]["artifact"])
    dropped = {record_key(d) for d in json.loads(store.read_file(sft_ref, "dropped_overlength.json"))}
    dataset_ref = ArtifactRef.parse(record["stages"]["materialize"]["artifact"])
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"]}
        for r in store.read_table(dataset_ref, "sft_train").to_pylist()
        if record_key(r) not in dropped
    ]
    with tempfile.TemporaryDirectory() as out:
        args = trl_args(section, out, use_cpu=True)
        args.save_strategy = "no"
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
        )
        t0 = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - t0
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return {"tokens": tokens, "runtime": result.metrics.get("train_runtime", wall)}


if __name__ == "__main__":
    main()
