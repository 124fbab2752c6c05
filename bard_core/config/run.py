"""The whole run: one section per stage."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from bard_core.config.base import RayConfig, Section, StoreConfig
from bard_core.config.bridge import BridgeConfig
from bard_core.config.evaluate import EvaluateConfig
from bard_core.config.models import HubModelSpec, ModelSpec, PathModelSpec, ToyPretrainedModelSpec, default_models
from bard_core.config.stages import (
    BudgetConfig,
    CompressConfig,
    IngestConfig,
    MaterializeConfig,
    SampleConfig,
    StudentConfig,
)
from bard_core.config.training import RLStageConfig, SFTStageConfig
from bard_core.config.watch import WatchConfig


class RunConfig(Section):
    name: str = Field(default="bard", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Run name (used in flow-run names and named refs)."""
    store: StoreConfig = StoreConfig()
    """Where artifacts are stored."""
    ray: RayConfig = RayConfig()
    """Which Ray runtime executes the heavy work."""
    models: dict[str, ModelSpec] = Field(default_factory=default_models)
    """Named models (engines and the student refer to them by name): hub ids, folders, built models."""
    student: StudentConfig = StudentConfig()
    """The student model (its tokenizer defines the budget unit)."""
    budget: BudgetConfig = BudgetConfig()
    """The budget contract: tiers, fidelity shape, tolerance, prompt."""
    ingest: IngestConfig = IngestConfig()
    """The `ingest` stage: problem sources."""
    bridge: BridgeConfig = BridgeConfig()
    """BRIDGE (off by default): a teacher assistant chooses the problems the teacher is asked about
    (`select`), is fine-tuned on the answers (`assistant`) and labels the rest (`amplify`)."""
    sample: SampleConfig = SampleConfig()
    """The `sample` stage: teacher sampling."""
    compress: CompressConfig = CompressConfig()
    """The `compress` stage: compression to budget tiers."""
    materialize: MaterializeConfig = MaterializeConfig()
    """The `materialize` stage: SFT and RL datasets."""
    sft: SFTStageConfig = SFTStageConfig()
    """The `sft` stage: supervised fine-tuning on the budget-conditioned data."""
    rl: RLStageConfig = RLStageConfig()
    """The `rl` stage: GRPO with reward = correctness x budget fidelity, from the SFT checkpoint (see
    `rl.reward` and `rl.init` for the ablations)."""
    evaluate: EvaluateConfig = EvaluateConfig()
    """The `evaluate` stage: every checkpoint on benchmarks across a budget grid, baselines, report."""
    watch: WatchConfig = WatchConfig()
    """The teacher watcher: sources of new teachers, and the deployment it starts for each."""

    @model_validator(mode="after")
    def _rl_budgets_are_tiers(self) -> RunConfig:
        outside = sorted(set(self.rl.budget_weights or {}) - set(self.budget.tiers_tokens))
        if outside:
            raise ValueError(
                f"rl.budget_weights has budget(s) {outside} outside the tiers {list(self.budget.tiers_tokens)}; "
                "use tiers from budget.tiers_tokens or add these to it"
            )
        return self

    @model_validator(mode="after")
    def _bridge_models(self) -> RunConfig:
        # A TA name that is neither in the catalog, a folder nor a hub id ("org/name") is a typo, not a model.
        b = self.bridge
        uses_assistant = b.enabled and (b.amplify.enabled or b.selector.needs_scores)
        known = b.assistant in self.models or "/" in b.assistant or _is_folder(b.assistant)
        if uses_assistant and not known:
            raise ValueError(
                f"bridge.assistant {b.assistant!r} is not in `models`, not a folder and not a hub id; "
                "add it to `models` (e.g. toy-ta: {kind: toy_pretrained, ...})"
            )
        spec = self.models.get(b.assistant)
        if uses_assistant and isinstance(spec, ToyPretrainedModelSpec):
            self._assistant_prior_is_not_the_task(spec)
        return self

    def _assistant_prior_is_not_the_task(self, spec: ToyPretrainedModelSpec) -> None:
        """A toy TA pretrained on the task's own problems would be teacher data the budget never paid for."""
        from bard_core.toy.pretrain_corpus import check_disjoint_from

        for i, source in enumerate(self.ingest.sources):
            for family in getattr(source, "families", ()):
                if family.family.is_lab:
                    try:
                        check_disjoint_from(spec.corpus.difficulty(), family.difficulty)
                    except ValueError as exc:
                        raise ValueError(f"models.{self.bridge.assistant} against ingest.sources[{i}]: {exc}") from None

    def model_spec(self, name: str) -> ModelSpec:
        """The catalog entry for ``name``; otherwise an existing folder, else a Hugging Face id."""
        if name in self.models:
            return self.models[name]
        if _is_folder(name):
            return PathModelSpec(path=name)
        return HubModelSpec(id=name)


def _is_folder(name: str) -> bool:
    """Whether a model name is an existing folder; a name no path can be (longer than the OS allows, or
    ``~user`` of no such user) is not one, rather than a raw OSError or RuntimeError out of the validator."""
    try:
        return Path(name).expanduser().is_dir()
    except (OSError, RuntimeError):
        return False
