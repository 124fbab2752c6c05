"""SFT tokens/s through the stage (Prefect + Ray Train) divided by plain TRL SFTTrainer on the same model,
data and steps, in the same command.

The baseline is what a user would run on this CPU by hand: plain `trl.SFTTrainer` at the faster of fp32 and
bf16 autocast, measured here on a short calibration run of each (TRL's own default, bf16, is ~35x slower
than fp32 on an AVX2-only CPU and ~2x faster on one with AMX). The stage trains at the precision the
pipeline resolves for this CPU (`bard_core/precision.py`), so a wrong choice shows up as a low ratio.

Tokens/s is TRL's own count of trained tokens over TRL's train runtime (inside the Ray Train worker for the
stage: what a long run converges to); the stage's whole wall time, with Ray Train's start-up and the
checkpoint upload, is printed beside it. Target (issue #11): ratio >= 0.9 on any CPU. Last line:
`sft_ratio=<stage tok/s / plain tok/s> sft_tok_s=<stage tok/s> ...`.

    .venv/bin/python benchmarks/sft_throughput.py [--steps 150] [--calibration-steps 10] [--recipe configs/toy.yaml]
                                                  [--store URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bard_pipeline.infra.env import apply_defaults  # noqa: E402

apply_defaults()


@dataclass(frozen=True)
class Measured:
    tokens: float
    runtime_s: float

    @property
    def tok_s(self) -> float:
        return self.tokens / max(self.runtime_s, 1e-9)


def run_stage(recipe: str, overrides: list[str]) -> dict[str, Any]:
    from bard_core.recipes import load_config
    from bard_pipeline.flows.distill import distill
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

    state = distill(recipe=recipe, overrides=overrides, until="sft", return_state=True)
    cfg = load_config(recipe, overrides)
    store = ArtifactStore(cfg.store.root)
    record = store.read_run(str(state.state_details.flow_run_id))
    if record["status"] != "completed":
        raise SystemExit(f"the pipeline run failed: {state.message}")
    manifest = store.manifest(ArtifactRef.parse(record["stages"]["sft"]["artifact"]))
    return {
        "measured": Measured(manifest.usage["train_tokens"], manifest.usage["train_runtime_s"]),
        "wall_s": manifest.timings["wall_s"],
        "precision": manifest.stats["precision"],
        "store": store,
        "record": record,
        "section": cfg.sft,
    }


def training_rows(stage: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The stage's model folder and exactly the records it trained on (over-length ones dropped)."""
    from bard_pipeline.infra.local_cache import local_artifact_dir
    from bard_pipeline.infra.store import ArtifactRef

    store, stages = stage["store"], stage["record"]["stages"]
    model_dir = local_artifact_dir(store, ArtifactRef.parse(stages["model:toy-student"]["artifact"]), "model")
    sft_ref = ArtifactRef.parse(stages["sft"]["artifact"])  # holds the records its workers trained on
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"]}
        for r in store.read_table(sft_ref, "sft_kept_train").to_pylist()
    ]
    return str(model_dir), rows


def plain_trl(model_dir: str, rows: list[dict[str, Any]], section: Any, precision: str, steps: int) -> Measured:
    """Plain `SFTTrainer`, as a user would write it, at an explicit precision ("fp32" or "bf16")."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from bard_core.precision import Precision, PrecisionChoice
    from bard_pipeline.infra.precision import cpu_hardware
    from bard_pipeline.infra.training import trl_args

    torch.set_num_threads(int(section.resources.cpus_per_worker))
    choice = PrecisionChoice(Precision(precision), "recipe", cpu_hardware())
    section = section.model_copy(update={"trl": {**section.trl, "max_steps": steps}})
    with tempfile.TemporaryDirectory() as out:
        args = trl_args(section, out, True, choice)
        args.save_strategy = "no"
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
        )
        result = trainer.train()
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return Measured(tokens, result.metrics["train_runtime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--calibration-steps", type=int, default=10, help="plain TRL steps per precision")
    parser.add_argument("--recipe", default=str(REPO / "configs/toy.yaml"))
    parser.add_argument(
        "--store", default=None, help="store root whose data stages are committed (default: an empty temporary one)"
    )
    args = parser.parse_args()
    from bard_pipeline.infra.precision import cpu_hardware

    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        os.environ["PREFECT_HOME"] = f"{tmp}/prefect"
        store_root = args.store or f"file://{tmp}/store"
        overrides = [f"store.root={store_root}", f"sft.trl.max_steps={args.steps}", "sft.probe.problems=0"]
        stage = run_stage(args.recipe, overrides)
        model_dir, rows = training_rows(stage)
        calibration = min(args.calibration_steps, args.steps)
        trial = {p: plain_trl(model_dir, rows, stage["section"], p, calibration) for p in ("fp32", "bf16")}
        best = max(trial, key=lambda p: trial[p].tok_s)
        plain = (
            trial[best] if calibration == args.steps else plain_trl(model_dir, rows, stage["section"], best, args.steps)
        )
    ours, cpus = stage["measured"], stage["section"].resources.cpus_per_worker
    print(f"\nSFT, {args.steps} steps, recipe {Path(args.recipe).name}, worker {cpus:g} of {os.cpu_count()} CPUs")
    print(f"CPU: {cpu_hardware().describe()}")
    for p, m in trial.items():
        print(f"  plain TRL, {p:4s} ({calibration} steps): {m.tok_s:8.1f} tok/s")
    print(f"  stage at {stage['precision']['reason']}: {ours.tokens:9.0f} tokens in {ours.runtime_s:6.1f} s train")
    print(f"      runtime = {ours.tok_s:8.1f} tok/s   (stage wall {stage['wall_s']:.1f} s)")
    print(f"  plain TRL at {best} (the faster): {plain.tokens:9.0f} tokens in {plain.runtime_s:6.1f} s train")
    print(f"      runtime = {plain.tok_s:8.1f} tok/s")
    ratio, wall_ratio = ours.tok_s / plain.tok_s, (ours.tokens / stage["wall_s"]) / plain.tok_s
    print(f"  ratio stage/plain: {ratio:.2f}   (on the stage's whole wall time: {wall_ratio:.2f})")
    print(
        f"sft_ratio={ratio:.3f} sft_tok_s={ours.tok_s:.1f} plain_tok_s={plain.tok_s:.1f} "
        f"plain_fp32_tok_s={trial['fp32'].tok_s:.1f} plain_bf16_tok_s={trial['bf16'].tok_s:.1f} "
        f"stage_bf16={int(stage['precision']['precision'] == 'bf16')} wall_ratio={wall_ratio:.3f}"
    )


if __name__ == "__main__":
    main()
