"""The whole run: one section per stage."""

from __future__ import annotations

from pydantic import Field

from bard_core.config.base import RayConfig, Section, StoreConfig
from bard_core.config.stages import (
    BudgetConfig,
    CompressConfig,
    IngestConfig,
    MaterializeConfig,
    SampleConfig,
    StudentConfig,
)


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
