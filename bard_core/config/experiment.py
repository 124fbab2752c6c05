"""An experiment: a grid of arms over one base recipe, each arm a list of ``key=value`` overrides, compared in
one report whose claims table says which of BARD's claims held.

Arms share every artifact their configs share (content addresses): the data stages run once, one SFT serves
every arm that starts from it. An arm names the evaluated series that stands for it (``rl``, ``sft``,
``truncated(sft)``), so an arm evaluates only that series.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import Field, field_validator, model_validator

from bard_core.config.base import Section
from bard_core.schemas import EvalMode

_SERIES = re.compile(r"^(?:truncated\((?P<cut>[A-Za-z0-9_-]+)\)|(?P<label>[A-Za-z0-9_-]+))$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ClaimKind(str, Enum):
    """A claim the report decides (the rules: ``bard_core.experiment_metrics.CLAIM_RULES``)."""

    LENGTH_FOLLOWS_BUDGET = "length_follows_budget"  # the arm's reasoning length follows the requested budget
    BEATS = "beats"  # the arm is more accurate than `other`, paired over the same problems and budgets
    FEWER_SHORT_WRONG = "fewer_short_wrong"  # the arm gives fewer short wrong answers than `other`
    NOT_WORSE = "not_worse"  # the arm is not less accurate than `other`: the paired interval reaches 0 or above


class ArmConfig(Section):
    overrides: tuple[str, ...] = ()
    """key=value overrides of the base recipe that make this arm (applied after the experiment's own)."""
    series: str = "rl"
    """The evaluated series that stands for the arm: a model label evaluated with the budget in its prompt
    (`rl`, `sft`, `base`) or `truncated(LABEL)`, the truncation baseline on that label."""

    @field_validator("series")
    @classmethod
    def _series(cls, value: str) -> str:
        if not _SERIES.match(value):
            raise ValueError(f"{value!r} is not a series; use a model label (rl, sft, base) or truncated(LABEL)")
        return value

    @property
    def model(self) -> str:
        """The evaluated model label of the series."""
        match = _SERIES.match(self.series)
        assert match is not None  # validated
        return match["cut"] or match["label"]

    @property
    def mode(self) -> EvalMode:
        """Budget in the prompt, or cut at the budget and forced to answer."""
        return EvalMode.TRUNCATED if self.series.startswith("truncated(") else EvalMode.BUDGET


class ClaimConfig(Section):
    kind: ClaimKind
    """Which claim: length_follows_budget (arm), beats (arm over other), fewer_short_wrong (arm than other)."""
    arm: str = "bard"
    """The arm the claim is about."""
    other: str | None = None
    """The arm it is compared with (beats, fewer_short_wrong)."""

    @model_validator(mode="after")
    def _other(self) -> ClaimConfig:
        if self.kind != ClaimKind.LENGTH_FOLLOWS_BUDGET and self.other is None:
            raise ValueError(f"a {self.kind.value} claim compares two arms; set `other`")
        return self


class ExperimentConfig(Section):
    name: str = Field(pattern=_NAME)
    """Experiment name (flow-run names, the named ref of its runs)."""
    base: str
    """Base recipe: a YAML file (relative to the working directory) or a packaged recipe name, e.g. toy."""
    overrides: tuple[str, ...] = ()
    """key=value overrides every arm gets (before its own)."""
    arms: dict[str, ArmConfig]
    """Arms by name, run in this order (put the arms whose artifacts others reuse first)."""
    reference: str = "bard"
    """The arm every other is compared with in the paired differences."""
    claims: tuple[ClaimConfig, ...] = ()
    """The claims the report decides, each held or not held with the numbers that decide it."""

    @field_validator("arms")
    @classmethod
    def _arms(cls, value: dict[str, ArmConfig]) -> dict[str, ArmConfig]:
        if not value:
            raise ValueError("needs at least one arm, e.g. {bard: {series: rl}}")
        bad = [name for name in value if not re.match(_NAME, name)]
        if bad:
            raise ValueError(f"arm names {bad} must be letters, digits, '_', '-' or '.'")
        return value

    @model_validator(mode="after")
    def _references(self) -> ExperimentConfig:
        named = [self.reference, *(c.arm for c in self.claims), *(c.other for c in self.claims if c.other)]
        unknown = sorted({n for n in named if n not in self.arms})
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown} in reference/claims; arms are {list(self.arms)}")
        return self
