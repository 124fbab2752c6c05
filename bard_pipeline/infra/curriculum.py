"""The student curriculum (``sft.curriculum``) as one TRL SFT run: a phase-ordered sampler.

The train dataset is the instruction records followed by the reasoning records. The sampler
(``CurriculumSFTTrainer._get_train_sampler``, transformers' own hook for the training sampler) yields the
first ``instruction_steps x global batch`` samples from the instruction records and the rest from the
reasoning records (``bard_core.training_data.curriculum_order``), and the run is one Trainer epoch of
exactly the planned total steps. Because the order is fixed and seeded, a resumed run (the Trainer skips
the batches it already trained from the sampler) continues where it stopped, in whichever phase that was.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from bard_core.config import SFTStageConfig
from bard_core.training_data import curriculum_order, epoch_steps
from bard_pipeline.infra.precision import training_precision
from bard_pipeline.infra.training import TrainingConfigError, trl_args


class PhaseSampler:
    """A fixed sample order (the DataLoader needs only iteration and a length)."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def planned_steps(args: Any, reasoning_records: int, world: int) -> int:
    """The run's total optimizer steps: ``max_steps`` when set, else what ``num_train_epochs`` over the
    reasoning records alone would train (so a curriculum arm trains as many steps as the arm without)."""
    if args.max_steps > 0:
        return int(args.max_steps)
    batch, accum = args.per_device_train_batch_size, args.gradient_accumulation_steps
    return epoch_steps(reasoning_records, batch, accum, world, float(args.num_train_epochs))


def check_steps(section: SFTStageConfig, total_steps: int) -> None:
    """The instruction phase must leave reasoning steps; the error names the fields to change."""
    assert section.curriculum is not None
    if section.curriculum.instruction_steps >= total_steps:
        raise TrainingConfigError(
            f"sft.curriculum.instruction_steps={section.curriculum.instruction_steps} leaves no reasoning steps "
            f"of the run's {total_steps} (trl.max_steps, or trl.num_train_epochs over the kept records); lower "
            "instruction_steps, or set a larger sft.trl.max_steps"
        )


def driver_steps(section: SFTStageConfig, reasoning_records: int) -> int:
    """The total steps the workers will plan (``resources.workers`` of them), checked on the driver so a
    curriculum that does not fit fails before training."""
    with tempfile.TemporaryDirectory() as out:
        args = trl_args(section, out, True, training_precision(section.trl, False))
    total = planned_steps(args, reasoning_records, section.resources.workers)
    check_steps(section, total)
    return total


@functools.cache
def curriculum_trainer() -> type[Any]:
    """``trl.SFTTrainer`` with the phase sampler (built lazily: trl is a worker-side import)."""
    from trl import SFTTrainer

    class CurriculumSFTTrainer(SFTTrainer):
        """``instruction_records`` rows first in ``train_dataset``, then the reasoning rows; ``args.max_steps``
        is the planned total (``planned_steps``), of which ``instruction_steps`` train on instructions."""

        def __init__(self, *args: Any, instruction_records: int, instruction_steps: int, **kwargs: Any) -> None:
            self.instruction_records, self.instruction_steps = instruction_records, instruction_steps
            self.instruction_samples = 0  # what the sampler gave the instruction phase (reported by the loop)
            super().__init__(*args, **kwargs)
            if self.args.max_steps <= 0:
                raise ValueError("a curriculum run needs its planned total as args.max_steps (planned_steps)")

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:  # transformers' hook; a PhaseSampler
            dataset: Any = self.train_dataset if train_dataset is None else train_dataset
            reasoning = len(dataset) - self.instruction_records
            # One optimizer step takes this many samples over all ranks; accelerate hands rank r every
            # world-th batch of the order, so every rank's first instruction_steps steps are instructions.
            per_step = self._train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            order = curriculum_order(
                self.instruction_records,
                reasoning,
                self.instruction_steps * per_step,
                self.args.max_steps * per_step,
                seed,
            )
            self.instruction_samples = self.instruction_steps * per_step
            return PhaseSampler(order)

    return CurriculumSFTTrainer
