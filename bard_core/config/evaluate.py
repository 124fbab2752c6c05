"""The `evaluate` stage: checkpoints x benchmarks x budgets x k samples, with the truncation baseline."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bard_core.config.base import EXECUTION, ResourcesConfig, Section
from bard_core.config.engines import HFEngineConfig, VLLMEngineConfig
from bard_core.grading import GraderKind
from bard_core.problems import bundled_datasets

CHECKPOINT_LABELS = ("base", "sft", "rl")  # the run's own models: the student before training, after each stage


def benchmark_names() -> list[str]:
    return sorted(name for name, data in bundled_datasets().items() if data.kind == "benchmarks")


class _BenchmarkBase(Section):
    limit: int | None = Field(default=None, ge=1)
    """Evaluate at most this many problems of the benchmark (after rejections), in file order."""


class IngestedBenchmark(_BenchmarkBase):
    kind: Literal["ingested"] = "ingested"
    """Problems of this run's `ingest` artifact in one split (e.g. the toy world's held-out test set)."""
    split: str = "test"
    """Which split of the ingested problems."""
    name: str = "heldout"
    """Label of the benchmark in metrics and the report."""


class BundledBenchmark(_BenchmarkBase):
    kind: Literal["bundled"] = "bundled"
    """A benchmark shipped with the package: aime24, aime25, amc23, gsm8k_test, math500, mmlu_stem."""
    name: str
    """Bundled benchmark name (`bard data ls`)."""
    grader: GraderKind | None = None
    """How answers are graded (None: the benchmark's default, e.g. choice for mmlu_stem)."""

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        available = benchmark_names()
        if value not in available:
            raise ValueError(
                f"unknown benchmark {value!r}; available: {', '.join(available)}. "
                "For anything else use {kind: file, name: ..., path: ...}"
            )
        return value


class FileBenchmark(_BenchmarkBase):
    kind: Literal["file"] = "file"
    """A local JSONL (optionally .gz) or Parquet file, e.g. a GPQA-Diamond copy you may not redistribute."""
    name: str
    """Label of the benchmark in metrics and the report."""
    path: str
    """Path of the file, relative to the working directory."""
    id_field: str | None = "id"
    """Column holding a unique id (None: ids are made from the row number)."""
    problem_field: str = "problem"
    """Column holding the problem text (for multiple choice: the question with its lettered options)."""
    answer_field: str = "answer"
    """Column holding the reference answer (for multiple choice: the letter)."""
    grader: GraderKind = GraderKind.MATH
    """How answers are graded: math (\\boxed{} + math-verify), choice (a letter), reasoning_gym."""


BenchmarkConfig = Annotated[IngestedBenchmark | BundledBenchmark | FileBenchmark, Field(discriminator="kind")]


class TruncationConfig(Section):
    """Naive truncation: the model reasons unconstrained; its reasoning is cut at each budget and
    ``</think>`` forced, so it must answer from what it has. The uncut outputs are the unconstrained
    reference for "tokens saved"."""

    model: str = "sft"
    """Which evaluated label is truncated: a budget-agnostic checkpoint (see `checkpoints`) or base/sft/rl."""
    prompt_budget_tokens: int | None = None
    """Budget written in its prompt (None: the problem alone, as a budget-agnostic model was trained)."""
    max_new_tokens: int = Field(default=1024, ge=1)
    """Token limit of the unconstrained generation."""
    answer_tokens: int = Field(default=48, ge=1)
    """Tokens the model may use to answer after the forced </think>."""


class EvaluateConfig(Section):
    enabled: bool = Field(default=True, json_schema_extra=EXECUTION)
    """Run the stage at the end of the flow (not part of the fingerprint)."""
    models: tuple[str, ...] = CHECKPOINT_LABELS
    """Labels evaluated with the budget in the prompt: base, sft, rl, and names from `checkpoints`."""
    checkpoints: dict[str, str] = Field(default_factory=dict)
    """Extra models by label -> artifact ref (e.g. `agnostic: sft/<fingerprint>` of a budget-agnostic run)."""
    benchmarks: tuple[BenchmarkConfig, ...] = (IngestedBenchmark(),)
    """What to evaluate on."""
    budgets_tokens: tuple[int, ...] | None = None
    """Budget grid (None: the run's tiers)."""
    samples_per_problem: int = Field(default=4, ge=1)
    """k: samples per problem and budget; accuracy is pass@1 averaged over them."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature (0: greedy, then k=1 is enough)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling."""
    seed: int = 0
    """Sampling and bootstrap seed."""
    max_new_tokens_factor: float = Field(default=2.0, ge=1)
    """A budgeted generation may use budget x this factor + answer_tokens before it is cut off."""
    answer_tokens: int = Field(default=64, ge=1)
    """Tokens allowed for the answer after the reasoning."""
    truncation: TruncationConfig | None = TruncationConfig()
    """The truncation baseline (null: off)."""
    engine: Annotated[HFEngineConfig | VLLMEngineConfig, Field(discriminator="kind")] = HFEngineConfig(
        model="student", max_batch_size=64
    )
    """Engine that loads each checkpoint (`model` is replaced by the checkpoint being evaluated)."""
    resources: ResourcesConfig = ResourcesConfig(replicas=1, cpus_per_replica=1.0, batch_size=256)
    """Engine replicas per model."""
    shard_rows: int = Field(default=256, ge=1, json_schema_extra=EXECUTION)
    """Request rows per shard (the unit of resume; not part of the fingerprint)."""
    bootstrap_samples: int = Field(default=1000, ge=100)
    """Bootstrap resamples for confidence intervals."""
    confidence: float = Field(default=0.95, gt=0, lt=1)
    """Confidence level of the intervals."""

    @model_validator(mode="after")
    def _labels(self) -> EvaluateConfig:
        known = set(CHECKPOINT_LABELS) | set(self.checkpoints)
        unknown = [m for m in self.models if m not in known]
        if self.truncation is not None and self.truncation.model not in known:
            unknown.append(self.truncation.model)
        if unknown:
            raise ValueError(
                f"unknown model label(s) {unknown}; use base, sft, rl or add them to evaluate.checkpoints "
                "as label: <stage>/<fingerprint>"
            )
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names must be unique, got {names}; set `name` on file/ingested ones")
        return self
