"""Training adapters: TRL configs, the assistant-only loss mask, over-length accounting, the typed job a
training worker gets (RL prompt draws are tested in tests/bard_core/test_training_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.config import RLStageConfig, SFTStageConfig
from bard_core.precision import Hardware, Precision, PrecisionChoice
from bard_core.recipes import ConfigError, validate_config
from bard_core.training_data import split_overlength
from bard_pipeline.infra.training import (
    TrainingConfigError,
    record_lengths,
    require_chat_template,
    trl_args,
    validate_trl,
)
from tests.conftest import CONFIGS

FP32 = PrecisionChoice(Precision.FP32, "hardware", Hardware("cpu", False, "test CPU"))


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_builds_its_trl_configs(recipe: Path) -> None:
    from bard_core.recipes import load_config

    cfg = load_config(recipe)
    validate_trl(cfg.sft, cfg.rl)


def test_trl_arguments_are_checked_with_the_fix(tmp_path: Path) -> None:
    sft = SFTStageConfig(trl={"learning_rate": 3e-4, "max_steps": 5})
    args = trl_args(sft, str(tmp_path), True, FP32)
    assert args.learning_rate == 3e-4 and args.completion_only_loss is True and args.packing is False
    assert args.max_length == sft.max_length_tokens and args.report_to == []
    with pytest.raises(
        TrainingConfigError,
        match=r"sft.trl.learning_rat is not an argument of trl.SFTConfig; did you mean 'learning_rate'",
    ):
        trl_args(SFTStageConfig(trl={"learning_rat": 1.0}), str(tmp_path), True, FP32)
    rl = RLStageConfig(trl={"num_generations": 4, "per_device_train_batch_size": 8})
    grpo = trl_args(rl, str(tmp_path), True, FP32)
    assert grpo.num_generations == 4
    with pytest.raises(ConfigError, match=r"\['output_dir'\] are set by the pipeline"):
        validate_config({"sft": {"trl": {"output_dir": "/x"}}}, "r.yaml")


def test_rl_budgets_outside_the_tiers_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"rl.budget_weights has budget\(s\) \[300\] outside the tiers"):
        validate_config({"budget": {"tiers_tokens": [16, 32]}, "rl": {"budget_weights": {16: 1, 300: 1}}}, "r.yaml")


def _records(toy_model_dir: Path) -> tuple[object, list[dict]]:  # type: ignore[type-arg]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(toy_model_dir)
    records = [
        {
            "problem_id": f"p{i}",
            "budget_tokens": 16,
            "kind": "compressed",
            "prompt": [{"role": "user", "content": "What is 2 + 3?\n\nThinking budget: 16 tokens."}],
            "completion": [
                {"role": "assistant", "content": "<think>\n2+3=5\n</think>\n\n\\boxed{5}" + " pad" * 40 * i}
            ],
        }
        for i in range(3)
    ]
    return tokenizer, records


def test_loss_is_on_the_assistant_turn_only(toy_model_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    tokenizer, records = _records(toy_model_dir)
    args = trl_args(SFTStageConfig(trl={"max_steps": 1}), str(tmp_path), True, FP32)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(toy_model_dir),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records]),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels, ids = batch["labels"][0].tolist(), batch["input_ids"][0].tolist()
    prompt_ids = tokenizer.apply_chat_template(records[0]["prompt"], tokenize=True, add_generation_prompt=True)
    prompt_len = len(prompt_ids["input_ids"] if hasattr(prompt_ids, "keys") else prompt_ids)
    assert all(label == -100 for label in labels[:prompt_len])  # the prompt (with the budget) is not learned
    assert labels[prompt_len:] == ids[prompt_len:]  # the assistant turn is
    assert tokenizer.decode(ids[prompt_len:]).startswith("<think>")


def test_over_length_records_are_counted_not_truncated(toy_model_dir: Path) -> None:
    tokenizer, records = _records(toy_model_dir)
    lengths = record_lengths(records, tokenizer, ("prompt", "completion"))
    assert lengths[0] < lengths[1] < lengths[2]
    kept, dropped = split_overlength(records, lengths, max_tokens=lengths[1])
    assert [r["problem_id"] for r in kept] == ["p0", "p1"]
    assert dropped == [{"problem_id": "p2", "budget_tokens": 16, "tokens": lengths[2]}]


def test_a_tokenizer_without_chat_template_is_refused(toy_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(toy_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(TrainingConfigError, match="has no chat template"):
        require_chat_template(tokenizer, "student/")


def test_a_train_job_travels_whole_and_its_rows_are_read_before_commit(tmp_path: Path) -> None:
    import pickle

    import pyarrow as pa

    from bard_core import schemas
    from bard_core.budget import BudgetSpec
    from bard_pipeline.infra.ray_train import TrainJob, TrainRows
    from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
    from bard_pipeline.infra.writer import ArtifactWriter

    store = ArtifactStore(f"file://{tmp_path}")
    writer = ArtifactWriter(store, ArtifactRef("rl", "f" * 16))
    rows = [
        {
            "problem_id": "p0",
            "problem": "1+1?",
            "answer": "2",
            "budget_tokens": 32,
            "prompt": [{"role": "user", "content": "1+1?"}],
            "grader": "math",
            "meta": "{}",
        }
    ]
    entry = writer.write_table("rl_prompts", pa.Table.from_pylist(rows, schema=schemas.RL_PROMPTS))
    section = RLStageConfig(seed=5)
    job = TrainJob(section, BudgetSpec((16, 32)), "store:sft/abc", store.root, None, TrainRows(writer.ref, entry))
    assert not store.exists(writer.ref)  # no manifest yet: the worker reads by entry, checksum verified
    copy = pickle.loads(pickle.dumps(job))
    assert copy == job and copy.section.seed == 5 and copy.budget.tiers_tokens == (16, 32)
    assert copy.train.read(copy.store()) == rows
    assert copy.use_gpu is False and copy.threads >= 1 and copy.model_prefix == "model"
    assert TrainJob.of(copy.loop_config(), RLStageConfig) is copy
    with pytest.raises(TypeError, match="SFTStageConfig training loop got TrainJob"):
        TrainJob.of(copy.loop_config(), SFTStageConfig)


def test_tensorboard_curves_are_kept_with_the_model(toy_model_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from bard_pipeline.infra.training import keep_tracker_logs, route_tracker_logs
    from tests.support.tfevents import read_scalars

    tokenizer, records = _records(toy_model_dir)
    section = SFTStageConfig(report_to=["tensorboard"], trl={"max_steps": 2, "logging_steps": 1})
    args = trl_args(section, str(tmp_path / "out"), True, FP32, run_name="sft-0123abcd")
    assert args.report_to == ["tensorboard"] and args.run_name == "sft-0123abcd"
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(toy_model_dir),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records]),
        processing_class=tokenizer,
    )
    route_tracker_logs(trainer, "sft-0123abcd")
    trainer.train()
    final = tmp_path / "final"  # what the loop stores as the artifact's model/ folder
    final.mkdir()
    keep_tracker_logs(trainer, final)

    scalars = read_scalars(final / "runs" / "sft-0123abcd")
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert all(loss > 0 for _, loss in scalars["train/loss"])


def test_trackers_are_a_section_field_and_must_be_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    assert "report_to" not in SFTStageConfig().fingerprint_dump()  # old SFT/RL addresses hold
    assert RLStageConfig(report_to=["tensorboard"]).fingerprint_dump()["report_to"] == ["tensorboard"]
    with pytest.raises(ConfigError, match=r"trackers go in the section's own report_to"):
        validate_config({"sft": {"trl": {"report_to": "wandb"}}}, "r.yaml")
    with pytest.raises(ConfigError, match=r"rl\.report_to"):
        validate_config({"rl": {"report_to": ["neptune"]}}, "r.yaml")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(
        TrainingConfigError, match=r"sft.report_to: mlflow needs the mlflow package.*pip install mlflow"
    ):
        trl_args(SFTStageConfig(report_to=["mlflow"]), str(tmp_path), True, FP32)
