"""SFT then RL on the smoke recipe, end to end: checkpoints round-trip through the store, the probe reports,
and a worker killed mid-training is replaced and resumes from the last checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.prompting import load_prompt
from bard_pipeline.chaos.drivers import copy_stages
from bard_pipeline.infra.local_cache import local_artifact_dir
from tests.conftest import SmokeRun
from tests.support.flows import DATA_STAGES, artifact, run_flow, statuses

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_sft_then_rl_store_working_checkpoints_and_probe_them(smoke_run: SmokeRun) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    state, record, store = smoke_run.state, smoke_run.record, smoke_run.store
    assert state.is_completed(), state.message
    assert statuses(record)["sft"] == statuses(record)["rl"] == "executed"

    base_dir = local_artifact_dir(store, artifact(record, "model:toy-student"), "model")
    sft_ref, rl_ref = artifact(record, "sft"), artifact(record, "rl")
    sft_dir, rl_dir = (local_artifact_dir(store, ref, "model") for ref in (sft_ref, rl_ref))
    folders = (base_dir, sft_dir, rl_dir)
    base, sft_weights, rl_weights = (AutoModelForCausalLM.from_pretrained(d).state_dict() for d in folders)
    assert _changed(base, sft_weights)
    # GRPO moves the weights only where a group's rewards differ; the smoke student is rarely right, so
    # with all-zero rewards (and beta=0, no weight decay) the policy must come out exactly as it went in.
    reward_std = store.manifest(rl_ref).stats["reward_curve"]["reward_std"]
    assert _changed(sft_weights, rl_weights) == any(std > 0 for std in reward_std)
    for folder in (sft_dir, rl_dir):  # tokenizer and chat template travel with the checkpoint
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.chat_template == AutoTokenizer.from_pretrained(base_dir).chat_template
        assert "{% generation %}" in tokenizer.chat_template
    assert store.verify(sft_ref) == [] and store.verify(rl_ref) == []

    sft = store.manifest(sft_ref)
    assert set(sft.stats["probe"]) == {"base", "sft"} and sft.stats["train"]["global_step"] == 20
    assert sft.stats["train_tokens_per_s"] > 0 and sft.stats["dropped_overlength"] >= 0
    probed = sft.stats["probe"]["sft"]["overall"]["n"]  # up to 4 validation problems x 4 tiers
    assert probed in (4, 8, 12, 16) and sft.rows["probe"] == 2 * probed  # base and sft
    rl = store.manifest(rl_ref)
    for manifest in (sft, rl):  # the smoke run forces "no native bf16": fp32, resolved in the worker
        assert manifest.stats["precision"]["precision"] == "fp32", manifest.stats["precision"]
        assert manifest.stats["precision"]["source"] == "hardware" and "forced" in manifest.stats["precision"]["device"]
        assert all(p["precision"]["precision"] == "fp32" for p in manifest.stats["probe"].values())
    assert set(rl.stats["probe"]) == {"sft", "rl"}  # before and after, on the same problems
    assert {"budget/correct", "budget/fidelity", "budget/reward"} <= set(rl.stats["reward_curve"])
    assert sum(rl.stats["budget_mix"].values()) == rl.stats["prompts"] + rl.stats["dropped_overlength"]


def _changed(before: dict, after: dict) -> bool:
    import torch

    return any(not torch.equal(before[k], after[k]) for k in before)


def test_a_worker_killed_mid_training_resumes_from_the_last_checkpoint(
    smoke_run: SmokeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_stages(smoke_run.root / "store", tmp_path / "store", DATA_STAGES)  # the data stages: the smoke run's, skipped
    marker = tmp_path / "killed"
    monkeypatch.setenv("BARD_KILL_TRAIN_WORKER_AT_STEP", f"15:{marker}")
    state, record, store = run_flow([f"store.root=file://{tmp_path}/store"], until="sft")
    assert state.is_completed(), state.message
    assert marker.exists(), "the worker was not killed"
    sft = store.manifest(artifact(record, "sft"))
    assert sft.stats["train"]["resumed"] is True  # restarted from the step-10 checkpoint, not from scratch
    assert sft.stats["train"]["global_step"] == 20
    from bard_pipeline.infra.precision import cpu_hardware

    expected = "bf16" if cpu_hardware().native_bf16 else "fp32"  # this machine's own answer, not forced
    assert sft.stats["precision"]["precision"] == expected, sft.stats["precision"]
    assert not (tmp_path / "store" / "_scratch" / "ray_train" / f"sft-{sft.fingerprint}").exists()


def test_a_curriculum_sft_trains_its_total_steps_and_resumes_inside_the_instruction_phase(
    smoke_run: SmokeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_stages(smoke_run.root / "store", tmp_path / "store", DATA_STAGES)
    # Killed at step 15, restarted from the step-10 checkpoint: inside the 12 instruction steps, so the
    # resumed run must finish the instruction phase and then train 8 reasoning steps: 20 in all.
    marker = tmp_path / "killed"
    monkeypatch.setenv("BARD_KILL_TRAIN_WORKER_AT_STEP", f"15:{marker}")
    curriculum = ["sft.curriculum={instruction_steps: 12}", "sft.probe.problems=0"]
    state, record, store = run_flow([f"store.root=file://{tmp_path}/store", *curriculum], until="sft")
    assert state.is_completed(), state.message
    assert marker.exists(), "the worker was not killed"
    sft = store.manifest(artifact(record, "sft"))
    assert sft.stats["train"]["resumed"] is True and sft.stats["train"]["global_step"] == 20
    problems = {r["problem_id"] for r in store.read_table(artifact(record, "materialize"), "rl_train").to_pylist()}
    curriculum = sft.stats["curriculum"]
    assert curriculum["instruction_steps"] == 12 and curriculum["reasoning_steps"] == 8
    assert curriculum["instruction_samples"] == 12 * 8  # the worker's sampler: 12 steps of batch 8, 1 worker
    assert curriculum["instruction_records"] + curriculum["instruction_dropped_overlength"] == len(problems)
    assert sft.rows["sft_kept_instruction"] == curriculum["instruction_records"] > 0
    kept = store.read_table(artifact(record, "sft"), "sft_kept_instruction").to_pylist()
    assert {r["kind"] for r in kept} == {"instruction"} and len({r["problem_id"] for r in kept}) == len(kept)
    assert sft.prompts == {"plain_user.txt": load_prompt("plain_user.txt").sha256}  # fingerprinted by content
