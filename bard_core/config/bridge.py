"""The BRIDGE section: a teacher-query budget spent where a teacher assistant (TA) says it matters.

BRIDGE (arXiv 2512.20403) for when the teacher is an expensive API and the budget is its queries:
`select` scores every training problem with the TA's local samples and embeddings and chooses the few
that fit `teacher_budget`; `sample` asks the teacher about those only; `assistant` fine-tunes the TA on the
teacher's gold traces; `amplify` has the refined TA write traces for every other training problem, graded
and gold-selected like the teacher's. The paper's scoring, selection rule and curriculum are not public:
ours are documented choices behind the registries of ``bard_core.bridge``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bard_core.bridge.embedding import EmbeddingKind
from bard_core.bridge.selection import SelectorKind
from bard_core.config.base import EXECUTION, ResourcesConfig, SamplingConfig, Section
from bard_core.config.engines import EngineConfig, HFEngineConfig
from bard_core.config.training import ProbeConfig, SFTStageConfig
from bard_core.selection import GoldSelection


class TeacherBudgetConfig(Section):
    requests: int | None = Field(default=None, ge=1)
    """Teacher requests: problems the teacher is asked about (one request carries a problem's n samples)."""
    share: float | None = Field(default=None, gt=0, le=1)
    """Share of the training problems the teacher is asked about (BRIDGE's 3-5 %: 0.03-0.05)."""
    usd: float | None = Field(default=None, gt=0)
    """Dollars, priced by the teacher engine's `price` at each request's worst case (the longest prompt,
    `sampling.max_new_tokens` per sample), so the spend can never exceed it."""

    @model_validator(mode="after")
    def _one_unit(self) -> TeacherBudgetConfig:
        given = [name for name in ("requests", "share", "usd") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"bridge.teacher_budget needs exactly one of requests, share, usd (got {given or 'none'}), "
                "e.g. {share: 0.05}"
            )
        return self


class ScoringConfig(Section):
    samples: int = Field(default=4, ge=2)
    """TA samples per problem; their answers' disagreement (entropy) is the difficulty."""
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, max_new_tokens=512)
    """The TA's sampling while scoring (a temperature near 1 lets disagreement show)."""
    token_entropy: bool = True
    """Also ask the engine for the mean token entropy of each sample (the HF engine gives it; others None)."""
    pool: int | None = Field(default=None, ge=1)
    """Score a seeded random pool of this many training problems instead of all of them (scoring is the
    TA's local compute: k samples per problem); the choice is made within the pool. None: every problem."""


class AmplifyConfig(Section):
    enabled: bool = True
    """Run the `assistant` and `amplify` stages. False: the student learns from the teacher's chosen few
    alone (the `direct_5` baseline of the BRIDGE experiment)."""
    n_samples: int = Field(default=1, ge=1)
    """TA samples per remaining problem; graded, and the gold one chosen by `selection`."""
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, max_new_tokens=1024)
    """The refined TA's sampling."""
    selection: GoldSelection = GoldSelection.SHORTEST_CORRECT
    """Which correct TA sample becomes a problem's gold trace (as `sample.selection` for the teacher)."""


def _assistant_sft() -> SFTStageConfig:
    # The TA imitates the teacher's full traces: no budget prompts, so the budget probe has nothing to measure.
    return SFTStageConfig(probe=ProbeConfig(problems=0))


class BridgeConfig(Section):
    enabled: bool = False
    """Run BRIDGE's `select` stage before `sample`, so the teacher answers only the chosen problems."""
    assistant: str = "toy-ta"
    """The teacher assistant's base model: a name from `models`, a folder or a hub id (e.g. a 7B instruct)."""
    engine: EngineConfig = HFEngineConfig(model="toy-ta")
    """The TA's engine for scoring and amplification (its `model` must be `assistant`; amplification runs it
    on the `assistant` stage's checkpoint)."""
    teacher_budget: TeacherBudgetConfig = TeacherBudgetConfig(share=0.05)
    """How many problems the teacher may be asked about."""
    selector: SelectorKind = SelectorKind.DIFFICULTY_DIVERSITY
    """How the problems are chosen: random, difficulty (top TA answer entropy), diversity (one per k-means
    cluster of the problem embeddings, nearest its centre) or difficulty+diversity (the hardest per cluster)."""
    embedding: EmbeddingKind = EmbeddingKind.NGRAM_TFIDF
    """How problem texts are embedded for diversity."""
    embedding_dim: int = Field(default=256, ge=8)
    """Dimensions of the embedding."""
    seed: int = 0
    """Seed of the pool, k-means and ties (a strategy's choice is reproducible from it)."""
    scoring: ScoringConfig = ScoringConfig()
    """The TA's local samples that score difficulty."""
    sft: SFTStageConfig = Field(default_factory=_assistant_sft)
    """The `assistant` stage: SFT of the TA on the teacher's gold traces (TRL on Ray Train, as `sft`)."""
    amplify: AmplifyConfig = AmplifyConfig()
    """The `amplify` stage: the refined TA labels the remaining training problems."""
    resources: ResourcesConfig = ResourcesConfig()
    """Engine replicas of `select` and `amplify` (not part of the fingerprint)."""
    shard_rows: int = Field(default=256, ge=1, json_schema_extra=EXECUTION)
    """Problems per shard of `select` and `amplify` (not part of the fingerprint)."""

    @model_validator(mode="after")
    def _engine_runs_the_assistant(self) -> BridgeConfig:
        if self.engine.model != self.assistant:
            raise ValueError(
                f"bridge.engine.model is {self.engine.model!r} but bridge.assistant is {self.assistant!r}; "
                "the TA engine must load the assistant: set both to the same model name"
            )
        return self
