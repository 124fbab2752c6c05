"""Typed configuration for a whole run: one frozen pydantic section per stage.

Every field is documented once, by the docstring under it; those docstrings are what ``bard config
show --explain`` and validation errors print. Sections that only say *how* to execute (replicas, CPUs,
batch sizes) live in ``resources`` and are excluded from artifact fingerprints: changing them never
invalidates an artifact.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bard_core.budget import BudgetSpec, FidelityShape
from bard_core.grading import GraderKind
from bard_core.selection import GoldSelection
from bard_core.toy.world import ToyFamily, check_difficulty


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


# --------------------------------------------------------------------------- infrastructure


class StoreConfig(Section):
    root: str = "file://.bard/store"
    """Artifact store root: file://PATH (relative to the working directory) or s3://BUCKET/PREFIX."""
    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, a local S3 server). Credentials come from the environment
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile), never from the config."""

    @field_validator("root")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3:// (e.g. file://.bard/store, s3://my-bucket/bard)")
        return value.rstrip("/")


class RayConfig(Section):
    address: str | None = None
    """Ray cluster to join ('auto', or ray://HOST:PORT). None starts a private local runtime per run."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of the private local runtime (None: all of this machine's)."""
    temp_dir: str | None = None
    """Ray session directory for the local runtime (None: <system temp>/bard-ray). Keep the path short:
    Ray puts Unix sockets there."""


class ResourcesConfig(Section):
    replicas: int = Field(default=1, ge=1)
    """Engine replicas (Ray actors) working in parallel."""
    cpus_per_replica: float = Field(default=0.5, gt=0)
    """Ray CPUs reserved per replica. Keep it fractional on small nodes: actors holding every CPU starve
    Ray Data's read/write tasks and the stage deadlocks."""
    gpus_per_replica: float = Field(default=0.0, ge=0)
    """GPUs per replica (tensor-parallel engines ask for their TP size)."""
    batch_size: int = Field(default=64, ge=1)
    """Requests handed to an engine replica per call."""


# --------------------------------------------------------------------------- engines


class OracleEngineConfig(Section):
    kind: Literal["oracle"] = "oracle"
    """Engine backend; 'oracle' is the toy world's teacher and compressor."""
    model: str = "toy-oracle"
    """Name recorded as the teacher/compressor in artifacts."""
    error_rate: float = Field(default=0.15, ge=0, le=1)
    """Probability that a teacher sample slips on one step (so grading matters)."""
    detour_rate: float = Field(default=1.0, ge=0)
    """How often the teacher adds self-checks and detours (redundancy to compress away)."""
    miss_sigma: float = Field(default=0.35, ge=0)
    """Spread of the compressor's length estimate: larger misses the budget more often."""
    answer_drop_rate: float = Field(default=0.03, ge=0, le=1)
    """Probability that a compression loses the answer (so answer verification matters)."""


EngineConfig = OracleEngineConfig


class SamplingConfig(Section):
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(default=4096, ge=1)
    """Cap on generated tokens per completion (the engine's tokenizer)."""
    seed: int = 0
    """Sampling seed; with the same seed a deterministic engine reproduces its outputs."""


# --------------------------------------------------------------------------- student


class ToyTokenizerConfig(Section):
    kind: Literal["toy_bpe"] = "toy_bpe"
    """Train a small BPE (digits split) on toy-world text."""
    vocab_size: int = Field(default=1024, ge=300, le=65536)
    """BPE vocabulary size (at least the 256 byte symbols plus specials)."""
    corpus_problems_per_family: int = Field(default=300, ge=10)
    """Toy problems per family whose text (prompts, traces, compressions) trains the BPE."""
    seed: int = 1_000_003
    """Seed of the corpus problems (distinct from the ingest seeds)."""


class HFTokenizerConfig(Section):
    kind: Literal["hf"] = "hf"
    """Use the student's own Hugging Face tokenizer."""
    name_or_path: str
    """Model id or local folder of the student (e.g. Qwen/Qwen3-8B)."""
    revision: str | None = None
    """Hub revision to pin (a commit sha keeps the budget unit reproducible)."""


class StudentConfig(Section):
    tokenizer: Annotated[ToyTokenizerConfig | HFTokenizerConfig, Field(discriminator="kind")] = ToyTokenizerConfig()
    """The student's tokenizer: it defines the budget unit (reasoning tokens)."""


# --------------------------------------------------------------------------- stages


class BudgetConfig(Section):
    tiers_tokens: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    """Budget tiers in student reasoning tokens, ascending."""
    fidelity: FidelityShape = FidelityShape.TARGET
    """'target': the length must be close to the budget (two-sided); 'cap': at most the budget."""
    tolerance: float = Field(default=0.2, ge=0, lt=1)
    """Relative tolerance: target accepts |len-b| <= tol*b; cap accepts len <= (1+tol)*b."""
    user_template: str = "budget_user.txt"
    """Prompt file that renders the budget into the student's user turn (fields: problem, budget_tokens)."""

    @field_validator("tiers_tokens")
    @classmethod
    def _tiers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(t <= 0 for t in value) or list(value) != sorted(set(value)):
            raise ValueError("must be a non-empty list of unique positive token counts in ascending order")
        return value

    def spec(self) -> BudgetSpec:
        return BudgetSpec(self.tiers_tokens, self.fidelity, self.tolerance)


class ToyFamilyConfig(Section):
    family: ToyFamily
    """Task family: chain_sum, products or leg_counting."""
    weight: float = Field(default=1.0, gt=0)
    """Share of the source's problems drawn from this family."""
    difficulty: dict[str, int] = Field(default_factory=dict)
    """reasoning-gym difficulty knobs, e.g. {max_terms: 4, max_digits: 2}; unset knobs keep toy defaults."""

    @model_validator(mode="after")
    def _knobs(self) -> ToyFamilyConfig:
        check_difficulty(self.family, self.difficulty)
        return self


class _SourceBase(Section):
    split: Literal["train", "test"] = "train"
    """Which split the rows belong to: sample/compress use train, evaluation uses test."""
    limit: int | None = Field(default=None, ge=1)
    """Keep at most this many rows from the source (after rejections), in source order."""


class ToySourceConfig(_SourceBase):
    kind: Literal["toy"] = "toy"
    """The built-in toy world (reasoning-gym generators, graded by their scorers)."""
    size: int = Field(default=1200, ge=1)
    """Problems to generate (duplicates are then rejected)."""
    seed: int = 0
    """Generator seed; different seeds give disjoint-looking problem sets."""
    families: tuple[ToyFamilyConfig, ...] = (
        ToyFamilyConfig(family=ToyFamily.CHAIN_SUM),
        ToyFamilyConfig(family=ToyFamily.PRODUCTS),
        ToyFamilyConfig(family=ToyFamily.LEG_COUNTING),
    )
    """Task families and their weights and difficulty."""


class BundledSourceConfig(_SourceBase):
    kind: Literal["bundled"] = "bundled"
    """A benchmark or training file shipped with the package (see `bard data ls`)."""
    name: str
    """Bundled dataset name, e.g. gsm8k_train, math_train, math500, aime24."""
    grader: GraderKind | None = None
    """How answers are graded (None: the dataset's own default, e.g. choice for mmlu_stem)."""


class FileSourceConfig(_SourceBase):
    kind: Literal["file"] = "file"
    """A local JSONL (optionally .gz) or Parquet file."""
    path: str
    """Path of the file, relative to the working directory."""
    id_field: str | None = "id"
    """Column holding a unique id (None: ids are made from the row number)."""
    problem_field: str = "problem"
    """Column holding the problem text."""
    answer_field: str = "answer"
    """Column holding the reference answer."""
    grader: GraderKind = GraderKind.MATH
    """How answers are graded."""


class HFSourceConfig(_SourceBase):
    kind: Literal["hf"] = "hf"
    """A Hugging Face dataset (needs network access or a warm HF cache)."""
    dataset: str
    """Dataset id, e.g. openai/gsm8k."""
    subset: str | None = None
    """Dataset configuration name, e.g. main."""
    hf_split: str = "train"
    """Split to read on the hub."""
    revision: str | None = None
    """Hub revision; pin a commit sha for reproducible fingerprints."""
    id_field: str | None = None
    """Column holding a unique id (None: ids are made from the row number)."""
    problem_field: str = "problem"
    """Column holding the problem text."""
    answer_field: str = "answer"
    """Column holding the reference answer."""
    grader: GraderKind = GraderKind.MATH
    """How answers are graded."""


SourceConfig = Annotated[
    ToySourceConfig | BundledSourceConfig | FileSourceConfig | HFSourceConfig, Field(discriminator="kind")
]


class IngestConfig(Section):
    sources: tuple[SourceConfig, ...] = (ToySourceConfig(),)
    """Problem sources, read in order; the first occurrence of a duplicate problem wins."""

    @field_validator("sources")
    @classmethod
    def _non_empty(cls, value: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        if not value:
            raise ValueError("needs at least one source (e.g. {kind: toy} or {kind: bundled, name: gsm8k_train})")
        return value


class SampleConfig(Section):
    engine: EngineConfig = OracleEngineConfig()
    """The teacher engine."""
    prompt_template: str = "teacher_user.txt"
    """Prompt file for the teacher's user turn (field: problem)."""
    system_prompt: str | None = None
    """Optional prompt file for a system turn."""
    n_samples: int = Field(default=4, ge=1)
    """Teacher samples per problem; all are kept with their `correct` flag."""
    sampling: SamplingConfig = SamplingConfig()
    """Teacher sampling parameters."""
    selection: GoldSelection = GoldSelection.SHORTEST_CORRECT
    """Which correct sample becomes the gold trace of a problem."""
    splits: tuple[Literal["train", "test"], ...] = ("train",)
    """Problem splits to sample (evaluation sets stay unseen)."""
    shard_rows: int = Field(default=256, ge=1)
    """Problems per shard; a retried stage redoes only missing shards."""
    resources: ResourcesConfig = ResourcesConfig()
    """Execution resources (not part of the fingerprint)."""


class CompressConfig(Section):
    engine: EngineConfig = OracleEngineConfig()
    """The compressor engine."""
    system_template: str = "compress_system.txt"
    """Prompt file for the compressor's system turn."""
    user_template: str = "compress_user.txt"
    """Prompt file for the compressor's request (fields: problem, reasoning, final, budget_tokens, ...)."""
    feedback_template: str = "compress_feedback.txt"
    """Prompt file appended on a retry (fields: measured_tokens, min_tokens, max_tokens, budget_tokens, issue)."""
    max_attempts: int = Field(default=3, ge=1)
    """Attempts per (trace, tier) before the tier is recorded as rejected."""
    sampling: SamplingConfig = SamplingConfig(temperature=0.3)
    """Compressor sampling parameters."""
    shard_rows: int = Field(default=256, ge=1)
    """Gold traces per shard."""
    resources: ResourcesConfig = ResourcesConfig()
    """Execution resources (not part of the fingerprint)."""


class MaterializeConfig(Section):
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share of problems held out for validation (split by problem, never by row)."""
    split_seed: int = 0
    """Seed of the deterministic train/validation assignment."""
    include_gold: bool = True
    """Also train on the uncompressed gold trace, at its own length as the budget."""


class RunConfig(Section):
    name: str = Field(default="bard", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Run name (used in flow-run names and named refs)."""
    store: StoreConfig = StoreConfig()
    """Where artifacts are stored."""
    ray: RayConfig = RayConfig()
    """Which Ray runtime executes the heavy work."""
    student: StudentConfig = StudentConfig()
    """The student model (its tokenizer defines the budget unit)."""
    budget: BudgetConfig = BudgetConfig()
    """The budget contract: tiers, fidelity shape, tolerance, prompt."""
    ingest: IngestConfig = IngestConfig()
    """Stage 1: problem sources."""
    sample: SampleConfig = SampleConfig()
    """Stage 2: teacher sampling."""
    compress: CompressConfig = CompressConfig()
    """Stage 3: compression to budget tiers."""
    materialize: MaterializeConfig = MaterializeConfig()
    """Stage 4: SFT and RL datasets."""
