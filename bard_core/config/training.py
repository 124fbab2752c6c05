"""Training sections: SFT then RL (GRPO), run by TRL inside Ray Train workers.

Trainer hyper-parameters are TRL's own: ``trl`` holds keyword arguments of ``trl.SFTConfig`` /
``trl.GRPOConfig`` and is turned into those objects (and so validated) by ``bard_pipeline.infra.training.trl_args``;
``bard validate`` builds them for every recipe. Keys the pipeline sets itself (where checkpoints go,
logging, devices) are refused with a message that says so.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bard_core.config.base import OMIT_DEFAULT, ExecutionSection, Section
from bard_core.rewards import RewardKind

# Set by the pipeline from other fields or from the runtime; not user-settable through `trl`.
RESERVED_TRL_KEYS = frozenset(
    {"output_dir", "report_to", "use_cpu", "save_strategy", "save_steps", "resume_from_checkpoint", "run_name",
     "logging_dir", "push_to_hub", "hub_model_id", "max_length", "dataloader_num_workers", "packing"}
)  # fmt: skip


def _check_trl(value: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(set(value) & RESERVED_TRL_KEYS)
    if reserved:
        # report_to has a home of its own: the section field, which also names the run and keeps the logs.
        hint = (
            "; trackers go in the section's own report_to (e.g. report_to: [tensorboard])"
            if "report_to" in reserved
            else ""
        )
        raise ValueError(
            f"{reserved} are set by the pipeline (checkpoints, logging, devices, max_length_tokens); remove them" + hint
        )
    return value


class Tracker(str, Enum):
    """Experiment trackers TRL reports the training curves to (``sft.report_to`` / ``rl.report_to``)."""

    TENSORBOARD = "tensorboard"  # event files stored with the model (model/runs/), no account needed
    MLFLOW = "mlflow"  # needs the mlflow package; MLFLOW_TRACKING_URI picks the server (default: files kept)
    WANDB = "wandb"  # needs the wandb package and an account (WANDB_API_KEY), or WANDB_MODE=offline


class RLInit(str, Enum):
    """Where RL starts (``rl.init``)."""

    SFT = "sft"  # the SFT checkpoint: BARD's SFT then RL
    BASE = "base"  # the student before any training: the RL-alone ablation


class TrainResourcesConfig(ExecutionSection):
    workers: int = Field(default=1, ge=1)
    """Ray Train workers (data-parallel processes); one per GPU on a cluster."""
    use_gpu: bool = False
    """Give each worker a GPU (then the global batch is per-device batch x workers)."""
    cpus_per_worker: float = Field(default=2.0, gt=0)
    """CPUs per worker; on CPU, torch uses this many threads."""
    max_failures: int = Field(default=1, ge=0)
    """Worker failures Ray Train recovers from by restarting from the last checkpoint."""
    checkpoint_every_steps: int = Field(default=100, ge=1)
    """Steps between checkpoints (what a retry or a restarted worker resumes from)."""


class LoraConfig(Section):
    r: int = Field(default=16, ge=1)
    """Rank of the adapters."""
    alpha: int = Field(default=32, ge=1)
    """Scaling (lora_alpha)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Modules to adapt."""


class ProbeConfig(Section):
    problems: int = Field(default=40, ge=0)
    """Held-out (validation) problems generated at every budget tier after training; 0 turns it off."""
    max_new_tokens: int = Field(default=512, ge=1)
    """Generation cap of the probe; set it well above the largest tier so over-long outputs show."""
    batch_size: int = Field(default=32, ge=1)
    """Sequences generated together."""


class CurriculumConfig(Section):
    """The student curriculum (BRIDGE): an instruction-alignment phase before the reasoning phase, in one
    training run. Its records (one per training problem: the budget-free user turn, an empty think block and
    the reference answer) teach the chat format, the think delimiters and the answer format first."""

    instruction_steps: int = Field(ge=1)
    """Optimizer steps of the instruction-alignment phase, counted inside the run's total (``trl.max_steps``,
    or the steps ``trl.num_train_epochs`` give over the reasoning records), so arms with and without a
    curriculum train the same number of steps; the reasoning records get the steps left."""
    instruction_template: str = "plain_user.txt"
    """Prompt file of the instruction records' user turn (budget-free; field: problem)."""


# TRL arguments (at their defaults) that would reorder or regroup the records, which the curriculum's sampler
# orders by phase.
_CURRICULUM_CONFLICTS: dict[str, Any] = {"shuffle_dataset": False, "train_sampling_strategy": "random"}


class _TrainingStage(Section):
    """What both training sections share: a `trl` dict of the trainer's own arguments, checked once here,
    and the trackers the training curves go to."""

    report_to: tuple[Tracker, ...] = Field(default=(), json_schema_extra=OMIT_DEFAULT)
    """Trackers of the live training curves, e.g. [tensorboard] (event files stored with the model under
    model/runs/), mlflow, wandb; the run is named STAGE-FINGERPRINT, after the artifact. Empty: none. At
    its default it is not part of the fingerprint."""

    @field_validator("trl", check_fields=False)
    @classmethod
    def _trl(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_trl(value)

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, value: tuple[Tracker, ...]) -> tuple[Tracker, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists a tracker twice ({[t.value for t in value]}); name each once")
        return value


class SFTStageConfig(_TrainingStage):
    trl: dict[str, Any] = Field(
        default_factory=lambda: {"learning_rate": 1e-4, "num_train_epochs": 1, "per_device_train_batch_size": 8}
    )
    """Keyword arguments of trl.SFTConfig (learning_rate, max_steps, per_device_train_batch_size, ...)."""
    max_length_tokens: int = Field(default=4096, ge=16)
    """Longest record (prompt + completion, student tokens). Longer records are dropped and counted, or fail
    the stage with `overlength: error`; they are never truncated."""
    overlength: Literal["drop", "error"] = "drop"
    """What to do with over-length records."""
    lora: LoraConfig | None = None
    """Train LoRA adapters instead of all weights (merged into the stored checkpoint)."""
    seed: int = 0
    """Training seed."""
    resources: TrainResourcesConfig = TrainResourcesConfig()
    """Execution resources (not part of the fingerprint)."""
    probe: ProbeConfig = ProbeConfig()
    """Budget-following probe of the trained model (and of the base model)."""
    curriculum: CurriculumConfig | None = Field(default=None, json_schema_extra=OMIT_DEFAULT)
    """Instruction-alignment phase before the reasoning phase (BRIDGE's student curriculum), e.g.
    {instruction_steps: 50}. None: reasoning records only. At its default it is not part of the fingerprint."""

    @model_validator(mode="after")
    def _curriculum_fits(self) -> SFTStageConfig:
        if self.curriculum is None:
            return self
        max_steps = self.trl.get("max_steps")
        if isinstance(max_steps, int) and max_steps > 0 and self.curriculum.instruction_steps >= max_steps:
            raise ValueError(
                f"curriculum.instruction_steps={self.curriculum.instruction_steps} leaves no reasoning steps: "
                f"they are counted inside trl.max_steps={max_steps}; lower instruction_steps or raise max_steps"
            )
        conflicts = sorted(k for k, default in _CURRICULUM_CONFLICTS.items() if self.trl.get(k, default) != default)
        if conflicts:
            raise ValueError(
                f"trl {conflicts} reorder the records, but with a curriculum the phase sampler orders them "
                "(instruction records first, then shuffled reasoning records); remove them or the curriculum"
            )
        return self


class RLStageConfig(_TrainingStage):
    trl: dict[str, Any] = Field(
        default_factory=lambda: {
            "learning_rate": 1e-6,
            "max_steps": 500,
            "per_device_train_batch_size": 8,
            "num_generations": 8,
            "max_completion_length": 4096,
        }
    )
    """Keyword arguments of trl.GRPOConfig (num_generations, max_completion_length, beta, use_vllm, ...)."""
    budget_weights: dict[int, float] | None = None
    """Sampling weights of the budget tiers given to RL prompts (None: uniform over budget.tiers_tokens)."""
    budgets_per_problem: int = Field(default=1, ge=1)
    """Budgets drawn per training problem (each becomes one prompt)."""
    max_prompts: int | None = Field(default=None, ge=1)
    """Use at most this many RL prompts (after drawing budgets), in a seeded shuffle."""
    max_prompt_tokens: int = Field(default=1024, ge=16)
    """Longest prompt (student tokens); longer prompts are dropped and counted."""
    lora: LoraConfig | None = None
    """Train LoRA adapters instead of all weights (merged into the stored checkpoint)."""
    seed: int = 0
    """Seed of the budget draws, the prompt shuffle and training."""
    resources: TrainResourcesConfig = TrainResourcesConfig()
    """Execution resources (not part of the fingerprint)."""
    probe: ProbeConfig = ProbeConfig()
    """Budget-following probe of the trained model."""
    init: RLInit = Field(default=RLInit.SFT, json_schema_extra=OMIT_DEFAULT)
    """Where RL starts: 'sft' (the SFT checkpoint) or 'base' (the untrained student: the RL-alone ablation).
    At its default it is not part of the fingerprint (existing RL artifacts keep their addresses)."""
    reward: RewardKind = Field(default=RewardKind.MULTIPLICATIVE, json_schema_extra=OMIT_DEFAULT)
    """How correctness and budget fidelity combine: 'multiplicative' (correct x fidelity, BARD's reward) or
    'additive' (correct + fidelity, an ablation known to teach short wrong answers). At its default it is not
    part of the fingerprint."""
    leak_factor: float | None = Field(default=None, ge=0, le=1, json_schema_extra=OMIT_DEFAULT)
    """Multiply the reward of an output whose answer leaked (answer_tokens > budget.leak_answer_tokens) by this
    factor, e.g. 0.5; null: no penalty. At its default it is not part of the fingerprint."""

    @field_validator("budget_weights")
    @classmethod
    def _weights(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        if value is not None and (not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0):
            raise ValueError(
                "must map budget tiers to non-negative weights with a positive sum, e.g. {512: 1, 1024: 2}"
            )
        return value
