"""Training adapters: TRL configs from our sections, datasets from artifacts, and the Ray Train loops.

The loops run in every Ray Train worker. Each gets a typed ``TrainJob`` (``ray_train.py``), reads the rows the
driver kept for it and the starting model from the artifact store (the model through the node's local
cache), trains with TRL, checkpoints through Ray Train every few steps (so a restarted
worker or a retried stage resumes from the last checkpoint) and, on rank 0, reports the final model.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from bard_core.config import RLStageConfig, SFTStageConfig
from bard_core.config.training import LoraConfig, Tracker
from bard_core.precision import Precision, PrecisionChoice
from bard_pipeline.infra.faults import train_kill_callback
from bard_pipeline.infra.precision import training_precision
from bard_pipeline.infra.ray_train import TrainJob

log = logging.getLogger(__name__)


class TrainingConfigError(ValueError):
    """A `trl` section that TRL does not accept."""


# Where a tracker's files go, under the trainer's output folder; `runs/` is what the Hub shows as training
# metrics (the folder HF Trainer itself uses), and it is copied into the stored model folder.
TRACKER_LOGS = "runs"

# Tracker -> the packages that provide it (any one will do): transformers writes TensorBoard files with
# torch.utils.tensorboard (needs `tensorboard`) or, without it, tensorboardX (which ray[train] brings).
TRACKER_PACKAGES: dict[Tracker, tuple[str, ...]] = {
    Tracker.TENSORBOARD: ("tensorboard", "tensorboardX"),
    Tracker.MLFLOW: ("mlflow",),
    Tracker.WANDB: ("wandb",),
}


def check_trackers(section: SFTStageConfig | RLStageConfig) -> None:
    """Every tracker of ``report_to`` can be imported here; else the error names the package to install."""
    name = "sft" if isinstance(section, SFTStageConfig) else "rl"
    for tracker in section.report_to:
        packages = TRACKER_PACKAGES[tracker]
        if not any(importlib.util.find_spec(package) for package in packages):
            raise TrainingConfigError(
                f"{name}.report_to: {tracker.value} needs the {' or '.join(packages)} package, which is not "
                f"installed in this environment; pip install {packages[0]}, or remove {tracker.value} from "
                f"{name}.report_to"
            )


def trl_args(
    section: SFTStageConfig | RLStageConfig,
    output_dir: str,
    use_cpu: bool,
    precision: PrecisionChoice,
    run_name: str | None = None,
) -> Any:
    """The TRL config object for a stage section; unknown keys fail with the closest valid name.

    Mixed precision comes from ``precision`` (the recipe's own ``bf16``/``fp16`` win), never from TRL's
    default of ``bf16=True``, which an AVX2-only CPU emulates far slower than fp32. ``run_name`` names the
    run in the trackers of ``report_to`` (the loops pass STAGE-FINGERPRINT, the artifact's name)."""
    import trl

    check_trackers(section)
    cls = trl.SFTConfig if isinstance(section, SFTStageConfig) else trl.GRPOConfig
    name = "sft" if isinstance(section, SFTStageConfig) else "rl"
    valid = {f.name for f in fields(cls)}
    for key in section.trl:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TrainingConfigError(f"{name}.trl.{key} is not an argument of trl.{cls.__name__}{hint}")
    base: dict[str, Any] = {
        "output_dir": output_dir,
        "report_to": [tracker.value for tracker in section.report_to] or "none",
        "run_name": run_name,
        "use_cpu": use_cpu,
        "save_strategy": "steps",
        "save_steps": section.resources.checkpoint_every_steps,
        "dataloader_num_workers": 0,
        "seed": section.seed,
        "disable_tqdm": True,
        "logging_steps": 10,
        **precision.trl_flags(),
    }
    if isinstance(section, SFTStageConfig):
        base.update(max_length=section.max_length_tokens, packing=False, completion_only_loss=True)
    try:
        return cls(**{**base, **section.trl})
    except (TypeError, ValueError) as exc:
        raise TrainingConfigError(f"{name}.trl is not a valid trl.{cls.__name__}: {exc}") from exc


def check_trl_args(section: SFTStageConfig | RLStageConfig) -> None:
    """Build a section's TRL config on this machine, so a bad `trl` fails on the driver, not in a worker.

    Without a CUDA device a GPU section is checked with use_cpu=True (TrainingArguments refuses bf16 on a
    machine without a GPU); every other field is checked the same way. Workers resolve their own precision."""
    import torch

    use_gpu = section.resources.use_gpu and torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as out:
        trl_args(section, out, not use_gpu, training_precision(section.trl, use_gpu))


def validate_trl(sft: SFTStageConfig, rl: RLStageConfig, assistant: SFTStageConfig | None = None) -> None:
    """Build the TRL configs (and BRIDGE's assistant SFT, when the run has one), as `bard validate` does."""
    for section in (sft, rl, *([assistant] if assistant else [])):
        check_trl_args(section)


def require_chat_template(tokenizer: Any, where: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingConfigError(
            f"the student tokenizer at {where} has no chat template; training renders the budget contract with "
            "it. Use the instruct/chat variant's tokenizer, or set `chat_template` in its tokenizer_config.json"
        )


def record_lengths(records: Sequence[Mapping[str, Any]], tokenizer: Any, keys: Sequence[str]) -> list[int]:
    """Token count of each record's chat (the given message-list columns, concatenated) under the template."""
    lengths = []
    for record in records:
        messages = [message for key in keys for message in record[key]]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=keys == ("prompt",))
        lengths.append(len(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return lengths


def apply_lora(model: Any, lora: LoraConfig | None) -> Any:
    if lora is None:
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def _callbacks() -> list[Any]:
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from transformers import TrainerCallback

    from bard_pipeline.infra.ray_train import StepsToDriver, step_board

    callbacks: list[Any] = [RayTrainReportCallback()]
    board = step_board()  # the driver's steps bar
    if board is not None:
        callbacks.append(type("StepsToDriver", (StepsToDriver, TrainerCallback), {})(board))
    kill = train_kill_callback(TrainerCallback)  # test-only fault switch (infra.faults)
    if kill is not None:
        callbacks.append(kill)
    return callbacks


def route_tracker_logs(trainer: Any, run_name: str) -> Path:
    """Point the trainer's trackers at ``<output_dir>/runs`` (TensorBoard files in ``runs/RUN_NAME``), so
    ``keep_tracker_logs`` can store them with the model; returns that folder. A tracker with a server of
    its own (MLFLOW_TRACKING_URI, a W&B account) still reports there: only its local default moves."""
    from transformers.integrations import TensorBoardCallback

    logs = Path(trainer.args.output_dir) / TRACKER_LOGS
    trackers = set(trainer.args.report_to or [])
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            # transformers' default is runs/<time>_<host>: name it after the artifact instead.
            callback.logging_dir = str(logs / run_name)
    # This process is the training worker of one run: its environment is the run's.
    if Tracker.MLFLOW.value in trackers:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (logs / "mlruns").resolve().as_uri())
    if Tracker.WANDB.value in trackers:
        os.environ.setdefault("WANDB_DIR", str(logs))
    return logs


def keep_tracker_logs(trainer: Any, final: Path) -> None:
    """Copy what the trackers wrote locally into the final model folder (``final/runs``), so the event
    files are stored, exported and pushed with the model."""
    logs = Path(trainer.args.output_dir) / TRACKER_LOGS
    if logs.is_dir() and any(logs.iterdir()):
        shutil.copytree(logs, final / TRACKER_LOGS, dirs_exist_ok=True)


def _run_name() -> str:
    """STAGE-FINGERPRINT: Ray Train's run name (``ray_train.fit``), the artifact the run is for."""
    import ray.train

    return str(ray.train.get_context().get_experiment_name())


def _resume_dir() -> str | None:
    """The HF checkpoint inside Ray Train's latest checkpoint, when this run is resuming."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    local = Path(checkpoint.to_directory())
    inner = local / "checkpoint"
    return str(inner if inner.is_dir() else local)


def _finish(trainer: Any, tokenizer: Any, extra: dict[str, Any]) -> None:
    """Every rank reports once more (Ray Train V2 needs it); rank 0 attaches the final, merged model."""
    import ray.train
    from ray.train import Checkpoint

    metrics = {"log_history": json.dumps(trainer.state.log_history), "global_step": trainer.state.global_step, **extra}
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # LoRA: store a plain checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        final = Path(tmp) / "final"
        model.save_pretrained(str(final))
        tokenizer.save_pretrained(str(final))
        keep_tracker_logs(trainer, final)
        (Path(tmp) / "FINAL").write_text("final model of the stage\n")
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))


def _setup(job: TrainJob[Any], precision: PrecisionChoice) -> tuple[Any, Any]:
    """The starting model (LoRA applied when the section asks) and its tokenizer, on this worker."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bard_pipeline.infra.local_cache import resolve_location

    if not job.use_gpu:
        torch.set_num_threads(job.threads)
    model_dir = resolve_location(job.model_location, job.store_root, job.endpoint_url, job.model_prefix)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    require_chat_template(tokenizer, model_dir)
    # A GPU in bf16 holds bf16 weights; on CPU autocast keeps fp32 master weights (and fp16 AMP needs them).
    bf16_weights = job.use_gpu and precision.precision is Precision.BF16
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if bf16_weights else torch.float32)
    return apply_lora(model, job.section.lora), tokenizer


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The columns the trainer takes (TRL passes every extra dataset column to the reward as a kwarg)."""
    return [{c: row[c] for c in columns} for row in rows]


def sft_loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop of the `sft` stage."""
    import ray.train
    from datasets import Dataset
    from trl import SFTTrainer

    job = TrainJob.of(config, SFTStageConfig)
    precision = training_precision(job.section.trl, job.use_gpu)  # this worker's device decides
    model, tokenizer = _setup(job, precision)
    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory(prefix=f"bard-sft-rank{rank}-") as out:
        run_name = _run_name()
        args = trl_args(job.section, out, not job.use_gpu, precision, run_name)
        store, columns = job.store(), ("prompt", "completion")
        train = _columns(job.train.read(store), columns)  # the driver's kept records: read, never re-filtered
        validation = _columns(job.validation.read(store), columns) if job.validation else []
        trainer_class: Any = SFTTrainer
        phases: dict[str, int] = {}
        curriculum = job.section.curriculum
        if curriculum is not None and job.instruction is not None:
            from bard_pipeline.infra.curriculum import check_steps, curriculum_trainer, planned_steps

            # One run: the instruction records, then the reasoning records, ordered by the phase sampler.
            instruction = _columns(job.instruction.read(store), columns)
            args.max_steps = planned_steps(args, len(train), args.world_size)
            check_steps(job.section, args.max_steps)
            trainer_class = curriculum_trainer()
            phases = {"instruction_records": len(instruction), "instruction_steps": curriculum.instruction_steps}
            train = instruction + train
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train),
            eval_dataset=Dataset.from_list(validation) if validation else None,
            processing_class=tokenizer,
            callbacks=_callbacks(),
            **phases,
        )
        route_tracker_logs(trainer, run_name)
        resume = _resume_dir()
        result = trainer.train(resume_from_checkpoint=resume)
        evaluation = trainer.evaluate() if validation else {}
        _finish(
            trainer,
            tokenizer,
            {
                "train_runtime_s": result.metrics.get("train_runtime", 0.0),
                "train_loss": result.training_loss,
                "eval_loss": evaluation.get("eval_loss", float("nan")),
                "resumed": resume is not None,
                "precision": json.dumps(precision.stats()),
                "instruction_samples": getattr(trainer, "instruction_samples", 0),  # 0: no curriculum
            },
        )


def rl_loop(config: dict[str, Any]) -> None:
    """Ray Train worker loop of the `rl` stage (GRPO with the budget reward)."""
    import ray.train
    from datasets import Dataset
    from trl import GRPOTrainer

    from bard_core.budget import HFTokenCounter
    from bard_core.rewards import BudgetReward

    job = TrainJob.of(config, RLStageConfig)
    precision = training_precision(job.section.trl, job.use_gpu)  # this worker's device decides
    model, tokenizer = _setup(job, precision)
    reward = BudgetReward(job.budget, HFTokenCounter(tokenizer), job.section.reward, job.section.leak_factor)
    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory(prefix=f"bard-rl-rank{rank}-") as out:
        run_name = _run_name()
        args = trl_args(job.section, out, not job.use_gpu, precision, run_name)
        # The prompts the driver drew and kept, in its order: read, never redrawn or re-filtered.
        train = _columns(job.train.read(job.store()), ("prompt", "answer", "budget_tokens", "grader", "meta"))
        trainer = GRPOTrainer(
            model=model,
            args=args,
            reward_funcs=[reward],
            train_dataset=Dataset.from_list(train),
            processing_class=tokenizer,
            callbacks=_callbacks(),
        )
        route_tracker_logs(trainer, run_name)
        resume = _resume_dir()
        result = trainer.train(resume_from_checkpoint=resume)
        _finish(
            trainer,
            tokenizer,
            {
                "train_runtime_s": result.metrics.get("train_runtime", 0.0),
                "train_loss": result.training_loss,
                "resumed": resume is not None,
                "precision": json.dumps(precision.stats()),
            },
        )
