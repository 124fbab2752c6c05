"""Engine configs, one per backend, selected by `kind` (resolved to engines in infra/engines)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bard_core.config.base import Section


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
