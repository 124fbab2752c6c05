"""Stage sections: student tokenizer, budget contract, problem sources and the data stages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bard_core.answer_extraction import AnswerExtractor, compile_answer_pattern
from bard_core.budget import USER_TEMPLATE_FIELDS, BudgetSpec, FidelityShape
from bard_core.chat_contract import EFFORT_TEMPLATE_FIELDS, BudgetContract, EffortLevel, EffortMode
from bard_core.config.base import EXECUTION, OMIT_DEFAULT, ResourcesConfig, SamplingConfig, Section
from bard_core.config.engines import EngineConfig, OracleEngineConfig
from bard_core.grading import GraderKind
from bard_core.materialize import BudgetLabel, RLBudgets
from bard_core.prompting import load_prompt
from bard_core.selection import GoldSelection
from bard_core.toy.world import ToyFamily, check_difficulty


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
    model: str = "toy-student"
    """The student model: a name from `models`, a local folder or a Hugging Face id."""
    tokenizer: Annotated[ToyTokenizerConfig | HFTokenizerConfig, Field(discriminator="kind")] = ToyTokenizerConfig()
    """The student's tokenizer: it defines the budget unit (reasoning tokens)."""


class EffortModeConfig(Section):
    tier_tokens: int | None = None
    """The mode is this budget tier: its prompt is exactly `thinking_budget=tier`'s (no records of its own)."""
    share: float | None = Field(default=None, gt=0, le=1)
    """The mode targets this share of the problem's own full-length (gold) trace (ThinkDial style); its
    prompt names the mode (`budget.effort_template`) and materialize writes mode records for it."""

    @model_validator(mode="after")
    def _one(self) -> EffortModeConfig:
        if (self.tier_tokens is None) == (self.share is None):
            raise ValueError("set exactly one of tier_tokens (a budget tier) or share (of the full-length trace)")
        return self


class BudgetConfig(Section):
    tiers_tokens: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    """Budget tiers in student reasoning tokens, ascending."""
    fidelity: FidelityShape = FidelityShape.TARGET
    """'target': the length must be close to the budget (two-sided); 'cap': at most the budget."""
    tolerance: float = Field(default=0.2, ge=0, lt=1)
    """Relative tolerance: target accepts |len-b| <= tol*b; cap accepts len <= (1+tol)*b."""
    user_template: str = "budget_user.txt"
    """Prompt file that renders the budget into the student's user turn (fields: problem, budget_tokens)."""
    agnostic_template: str = "plain_user.txt"
    """Prompt file of the user turn without a budget (field: problem): budget-agnostic training and baselines."""
    effort_template: str = Field(default="effort_user.txt", json_schema_extra=OMIT_DEFAULT)
    """Prompt file of the user turn of a share mode (fields: problem, effort), e.g. "Reasoning effort: low."."""
    modes: dict[EffortLevel, EffortModeConfig] = Field(default={}, json_schema_extra=OMIT_DEFAULT)
    """Effort modes (OpenAI's `reasoning_effort` values), each a budget tier or a share of the problem's own
    full-length trace (ThinkDial style), e.g. {low: {share: 0.25}, medium: {share: 0.5}, high: {share: 1.0}}.
    Any modes must include `high`: the reference the evaluation measures token reductions against."""
    default_budget: int | EffortLevel | None = Field(default=None, json_schema_extra=OMIT_DEFAULT)
    """What the exported chat template renders when a request names neither `thinking_budget` nor
    `reasoning_effort`: a token count, a mode, or null for the largest tier."""
    leak_answer_tokens: int = Field(default=256, ge=1, json_schema_extra=OMIT_DEFAULT)
    """An answer (the text after </think>) longer than this many student tokens counts as leaked reasoning:
    the leak rate of verdicts and reports, and what `rl.leak_factor` penalises."""

    @field_validator("tiers_tokens")
    @classmethod
    def _tiers(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(t <= 0 for t in value) or list(value) != sorted(set(value)):
            raise ValueError("must be a non-empty list of unique positive token counts in ascending order")
        return value

    @model_validator(mode="after")
    def _modes(self) -> BudgetConfig:
        for level, mode in self.modes.items():
            if mode.tier_tokens is not None and mode.tier_tokens not in self.tiers_tokens:
                raise ValueError(
                    f"modes.{level.value}.tier_tokens={mode.tier_tokens} is not one of tiers_tokens "
                    f"{list(self.tiers_tokens)}; use a tier, or a share"
                )
        if self.modes and EffortLevel.HIGH not in self.modes:
            raise ValueError("modes must include `high` (e.g. high: {share: 1.0}): reductions are measured against it")
        if isinstance(self.default_budget, EffortLevel) and self.default_budget not in self.modes:
            raise ValueError(f"default_budget {self.default_budget.value!r} is not one of the modes {self._names()}")
        if isinstance(self.default_budget, int):
            self.spec().check_budget(self.default_budget)
        return self

    def _names(self) -> list[str]:
        return [level.value for level in self.modes]

    def spec(self) -> BudgetSpec:
        return BudgetSpec(self.tiers_tokens, self.fidelity, self.tolerance, self.leak_answer_tokens)

    def contract(self) -> BudgetContract:
        """The budget contract the student is trained, evaluated and served under (prompts loaded)."""
        return BudgetContract(
            spec=self.spec(),
            budgeted=load_prompt(self.user_template).require(USER_TEMPLATE_FIELDS),
            effort=load_prompt(self.effort_template).require(EFFORT_TEMPLATE_FIELDS),
            modes=tuple(EffortMode(level.value, m.tier_tokens, m.share) for level, m in self.modes.items()),
            default=self.default_budget.value if isinstance(self.default_budget, EffortLevel) else self.default_budget,
            leak_answer_tokens=self.leak_answer_tokens,
        )


class ToyFamilyConfig(Section):
    family: ToyFamily
    """Task family: running_sum (a lab family: S sequential steps, disjoint held-out split by construction),
    or the reasoning-gym families chain_sum, products, leg_counting."""
    weight: float = Field(default=1.0, gt=0)
    """Share of the source's problems drawn from this family."""
    difficulty: dict[str, int] = Field(default_factory=dict)
    """Difficulty knobs, e.g. {max_terms: 4, max_digits: 2} (reasoning-gym's names for its families; for
    running_sum: min_terms, max_terms, min_digits, max_digits); unset knobs keep toy defaults."""

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
    """Task families and their weights and difficulty (lab and reasoning-gym families are graded differently,
    so one source holds one kind)."""

    @model_validator(mode="after")
    def _one_kind(self) -> ToySourceConfig:
        if len({f.family.is_lab for f in self.families}) > 1:
            raise ValueError(
                "mixes lab families (running_sum) with reasoning-gym ones; put them in separate toy sources"
            )
        return self


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
    max_bad_row_share: float = Field(default=0.1, ge=0, le=1)
    """Largest share of a JSONL file's non-blank lines that may be bad (not a JSON object, or lacking a
    required field) and be rejected row by row (reasons invalid_json, missing_field); above it the whole
    file fails, since it is probably not the file or field mapping the user meant."""


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
    answer_extractor: AnswerExtractor | None = Field(default=None, json_schema_extra=OMIT_DEFAULT)
    """Cut the reference answer out of `answer_field` at ingest: 'gsm8k' (the text after the last '####',
    commas removed: openai/gsm8k stores the worked solution), 'boxed' (the last \\boxed{...}) or 'regex'
    (group 1 of `answer_pattern`). A row it finds no answer in is rejected (answer_extraction_failed).
    None: the column is the answer as it is."""
    answer_pattern: str | None = Field(default=None, json_schema_extra=OMIT_DEFAULT)
    """Regular expression of `answer_extractor: regex`; group 1 is the answer, e.g. 'The answer is (.+)'."""

    @model_validator(mode="after")
    def _extractor(self) -> HFSourceConfig:
        if self.answer_extractor is AnswerExtractor.REGEX:
            if self.answer_pattern is None:
                raise ValueError("answer_extractor: regex needs answer_pattern (a regex whose group 1 is the answer)")
            compile_answer_pattern(self.answer_pattern)
        elif self.answer_pattern is not None:
            raise ValueError("answer_pattern is only read by answer_extractor: regex; set that or remove the pattern")
        return self


SourceConfig = Annotated[
    ToySourceConfig | BundledSourceConfig | FileSourceConfig | HFSourceConfig, Field(discriminator="kind")
]


class IngestConfig(Section):
    sources: tuple[SourceConfig, ...] = (ToySourceConfig(),)
    """Problem sources, read in order; the first occurrence of a duplicate problem wins."""
    max_problem_chars: int | None = Field(default=16_000, ge=1)
    """Reject a problem longer than this many characters (reason too_long); None: no limit. Characters,
    not tokens: ingest runs without the student tokenizer, so its artifact does not change with it.
    16,000 characters is roughly 4,000 tokens of English or LaTeX, over three times the longest bundled
    problem; a prompt that passes here but not a model's context is still rejected per row by the engines."""

    @field_validator("sources")
    @classmethod
    def _non_empty(cls, value: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        if not value:
            raise ValueError("needs at least one source (e.g. {kind: toy} or {kind: bundled, name: gsm8k_train})")
        _check_toy_seeds([(i, s) for i, s in enumerate(value) if isinstance(s, ToySourceConfig)])
        return value


def _toy_seed_ranges(source: ToySourceConfig) -> dict[str, tuple[int, int]]:
    # Mirrors bard_core.toy.world.toy_rows: family k of a source draws reasoning-gym items with seeds
    # seed*1009 + k + i, for i below its share of `size`.
    total = sum(f.weight for f in source.families)
    ranges = {}
    for k, fam in enumerate(source.families):
        if fam.family.is_lab:  # lab problems are drawn by content split, not reasoning-gym seed ranges
            continue
        start = source.seed * 1009 + k
        ranges[fam.family.value] = (start, start + max(1, round(source.size * fam.weight / total)))
    return ranges


def _check_toy_seeds(sources: list[tuple[int, ToySourceConfig]]) -> None:
    """Two toy sources whose seed ranges overlap draw the same problems (then rejected as duplicates: a
    'held-out' test source would be almost empty)."""
    for a, (i, first) in enumerate(sources):
        for j, second in sources[a + 1 :]:
            for family, (lo1, hi1) in _toy_seed_ranges(first).items():
                lo2, hi2 = _toy_seed_ranges(second).get(family, (0, 0))
                if lo1 < hi2 and lo2 < hi1:
                    raise ValueError(
                        f"toy sources {i} and {j} draw the same {family} problems (reasoning-gym seeds problem n "
                        f"with seed + n, and their ranges overlap); give source {j} a seed far from source {i}'s, "
                        f"e.g. seed: {first.seed + -(-first.size // 1009) + 1}"
                    )


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
    shard_rows: int = Field(default=256, ge=1, json_schema_extra=EXECUTION)
    """Problems per shard; a retried stage redoes only missing shards (not part of the fingerprint)."""
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
    shard_rows: int = Field(default=256, ge=1, json_schema_extra=EXECUTION)
    """Gold traces per shard (not part of the fingerprint)."""
    resources: ResourcesConfig = ResourcesConfig()
    """Execution resources (not part of the fingerprint)."""


class MaterializeConfig(Section):
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share of problems held out for validation (split by problem, never by row)."""
    split_seed: int = 0
    """Seed of the deterministic train/validation assignment."""
    include_gold: bool = True
    """Also train on the uncompressed gold trace, at its own length as the budget."""
    budget_conditioning: bool = True
    """False: the budget-agnostic baseline: SFT on the uncompressed gold traces only, prompts without a
    budget (`budget.agnostic_template`). Evaluate that checkpoint with `evaluate.truncation`."""
    budget_label: BudgetLabel = BudgetLabel.TARGET
    """The budget a compressed record's prompt states: the tier it was compressed to (`target`), or its own
    measured length (`measured`: hindsight relabelling, so every record sits exactly on its budget and the
    budgets seen in training cover the range, not only the tiers)."""
    heldout_budgets_tokens: tuple[int, ...] = ()
    """Budgets that no SFT record or RL prompt carries: records of these budgets are dropped (counted in the
    card as `heldout_budget`). Evaluate at them to measure budget following beyond the trained values."""
    rl_budgets: RLBudgets = RLBudgets.TIERS
    """RL prompt budgets: one prompt per tier (`tiers`), or `rl_budgets_per_problem` integers drawn uniformly
    between the smallest and largest tier (`range`; seeded per problem, held-out budgets excluded)."""
    rl_budgets_per_problem: int = Field(default=4, ge=1)
    """Budgets drawn per problem with `rl_budgets: range`."""

    @model_validator(mode="after")
    def _heldout(self) -> MaterializeConfig:
        if any(b < 1 for b in self.heldout_budgets_tokens):
            raise ValueError(f"heldout_budgets_tokens must be positive token counts, got {self.heldout_budgets_tokens}")
        return self
