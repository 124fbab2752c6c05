"""The student curriculum's trainer: one real TRL SFT run on the toy student whose first phase trains only
on instruction records, exactly max_steps in all, and a resumed run that continues on the same order."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from bard_core.config import SFTStageConfig
from bard_core.precision import Hardware, Precision, PrecisionChoice
from bard_core.prompting import load_prompt
from bard_core.training_data import instruction_records
from bard_pipeline.infra.curriculum import check_steps, curriculum_trainer, driver_steps, planned_steps
from bard_pipeline.infra.training import TrainingConfigError, trl_args

FP32 = PrecisionChoice(Precision.FP32, "hardware", Hardware("cpu", False, "test CPU"))
INSTRUCTIONS, REASONING = 3, 5


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    problems = [
        {"problem_id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(INSTRUCTIONS)
    ]
    instruction = instruction_records(problems, load_prompt("plain_user.txt"))
    reasoning = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + 2?\n\nThinking budget: 16 tokens."}],
            "completion": [{"role": "assistant", "content": f"<think>\n{i}+2={i + 2}\n</think>\n\n\\boxed{{{i + 2}}}"}],
        }
        for i in range(REASONING)
    ]
    return [{k: r[k] for k in ("prompt", "completion")} for r in instruction], reasoning


def _trainer(toy_model_dir: Path, out: Path, section: SFTStageConfig) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    instruction, reasoning = _rows()
    args = trl_args(section, str(out), True, FP32)
    args.max_steps = planned_steps(args, len(reasoning), args.world_size)

    class Observed(curriculum_trainer()):  # type: ignore[misc]
        """The curriculum trainer, recording the batch of every training step (nothing else changed)."""

        seen: ClassVar[list[list[tuple[int, ...]]]] = []

        def training_step(self, model: Any, inputs: Any, *rest: Any, **kwargs: Any) -> Any:
            ids, mask = inputs["input_ids"].tolist(), inputs["attention_mask"].tolist()
            unpadded = [tuple(i for i, m in zip(r, k, strict=True) if m) for r, k in zip(ids, mask, strict=True)]
            self.seen.append(unpadded)
            return super().training_step(model, inputs, *rest, **kwargs)

    Observed.seen = []
    assert section.curriculum is not None
    return Observed(
        model=AutoModelForCausalLM.from_pretrained(toy_model_dir),
        args=args,
        train_dataset=Dataset.from_list(instruction + reasoning),
        processing_class=AutoTokenizer.from_pretrained(toy_model_dir),
        instruction_records=len(instruction),
        instruction_steps=section.curriculum.instruction_steps,
    )


SECTION = SFTStageConfig(
    trl={"max_steps": 4, "per_device_train_batch_size": 2, "learning_rate": 1e-3},
    curriculum={"instruction_steps": 2},
    resources={"checkpoint_every_steps": 2},
)


def test_the_instruction_phase_trains_only_on_instruction_records(toy_model_dir: Path, tmp_path: Path) -> None:
    trainer = _trainer(toy_model_dir, tmp_path, SECTION)
    order = list(trainer._get_train_sampler())
    assert len(order) == 4 * 2  # exactly max_steps x batch samples: the run is one pass over the sampler
    assert trainer.instruction_samples == 2 * 2
    assert all(i < INSTRUCTIONS for i in order[:4]) and all(i >= INSTRUCTIONS for i in order[4:])
    rows = [tuple(trainer.train_dataset[i]["input_ids"]) for i in range(INSTRUCTIONS + REASONING)]
    result = trainer.train()
    assert trainer.state.global_step == 4 and result.global_step == 4
    assert len(trainer.seen) == 4  # one batch per step (no accumulation)
    instruction_rows, reasoning_rows = set(rows[:INSTRUCTIONS]), set(rows[INSTRUCTIONS:])
    assert all(row in instruction_rows for batch in trainer.seen[:2] for row in batch)
    assert all(row in reasoning_rows for batch in trainer.seen[2:] for row in batch)
    assert trainer.seen == [[rows[i] for i in order[s * 2 : s * 2 + 2]] for s in range(4)]  # the sampler's order

    # Resumed from the step-2 checkpoint: the Trainer skips what the order already gave, and the reasoning
    # phase starts where it would have.
    resumed = _trainer(toy_model_dir, tmp_path / "again", SECTION)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert resumed.state.global_step == 4 and resumed.seen == trainer.seen[2:]


def test_epoch_based_runs_train_as_many_steps_as_without_a_curriculum(tmp_path: Path) -> None:
    section = SFTStageConfig(
        trl={"num_train_epochs": 2, "per_device_train_batch_size": 2}, curriculum={"instruction_steps": 3}
    )
    args = trl_args(section, str(tmp_path), True, FP32)
    assert planned_steps(args, REASONING, 1) == 6  # 3 batches of 5 records, twice
    assert driver_steps(section, REASONING) == 6
    with pytest.raises(TrainingConfigError, match=r"instruction_steps=3 leaves no reasoning steps of the run's 2"):
        driver_steps(section, 2)  # one batch a pass: 2 steps in all
    check_steps(section, 4)
