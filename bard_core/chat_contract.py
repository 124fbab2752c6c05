"""The budget contract as a served model carries it: the user turn for a request's ``thinking_budget``
(tokens) or ``reasoning_effort`` (a mode), rendered in Python for training, RL and evaluation, and as a
Jinja chat template for transformers, vLLM and any OpenAI-compatible server.

One definition: both renderings come from the same prompt files (``budget.user_template`` for a budget,
``budget.effort_template`` for a share mode). ``chat_template`` translates a file's ``str.format`` text into
Jinja literal by literal, field by field, so the exported template renders exactly the bytes the student
was trained on (a test compares them); a file the translation cannot mirror (a format spec such as
``{budget_tokens:,}``) is refused when the contract is built, not at serving time.

Modes follow OpenAI's ``reasoning_effort`` values. A *tier* mode is a budget tier under another name: its
prompt is the tier's. A *share* mode (ThinkDial) targets a share of the problem's own full-length trace,
which a server cannot know, so its prompt names the mode and the student learned the length from mode
records (``materialize``); such a mode has no token bound to enforce.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bard_core.budget import BudgetError, BudgetSpec, render_user
from bard_core.prompting import PromptError, PromptTemplate

EFFORT_TEMPLATE_FIELDS = frozenset({"problem", "effort"})
CONTRACT_FILE = "bard_budget.json"
"""The contract as JSON beside an exported model: what `bard serve`'s enforcement reads."""


class EffortLevel(str, Enum):
    """OpenAI's ``reasoning_effort`` values a mode may take (vLLM validates the request field against them)."""

    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"


@dataclass(frozen=True)
class EffortMode:
    """One effort mode: a budget tier (``tier_tokens``) or a share of the full-length trace (``share``)."""

    name: str
    tier_tokens: int | None = None
    share: float | None = None


@dataclass(frozen=True)
class Request:
    """What a request asks for once resolved: a budget in tokens, or a share mode's name (never both)."""

    budget_tokens: int | None = None
    effort: str | None = None


@dataclass(frozen=True)
class BudgetContract:
    spec: BudgetSpec
    budgeted: PromptTemplate
    effort: PromptTemplate
    modes: tuple[EffortMode, ...] = ()
    default: int | str | None = None  # tokens, a mode name, or None: the largest tier
    leak_answer_tokens: int = 256

    def __post_init__(self) -> None:
        for template in (self.budgeted, self.effort):
            _segments(template)  # refuse what the Jinja translation cannot mirror, now

    def mode(self, name: str) -> EffortMode:
        for mode in self.modes:
            if mode.name == name:
                return mode
        raise BudgetError(f"unknown reasoning_effort {name!r}; this model has the modes {self.mode_names}")

    @property
    def mode_names(self) -> list[str]:
        return [m.name for m in self.modes]

    def resolve(self, budget_tokens: int | None = None, effort: str | None = None) -> Request:
        """A request's budget: ``thinking_budget`` wins over ``reasoning_effort``; neither: the default."""
        if budget_tokens is not None:
            return Request(budget_tokens=self.spec.check_budget(int(budget_tokens)))
        if effort is None:
            default = self.default if self.default is not None else self.spec.tiers_tokens[-1]
            return self.resolve(default, None) if isinstance(default, int) else self.resolve(None, default)
        mode = self.mode(effort)
        return Request(budget_tokens=mode.tier_tokens) if mode.tier_tokens is not None else Request(effort=mode.name)

    def render(self, problem: str, budget_tokens: int | None = None, effort: str | None = None) -> str:
        """The user turn for a problem under a request (the Python rendering every stage uses)."""
        request = self.resolve(budget_tokens, effort)
        if request.budget_tokens is not None:
            return render_user(self.budgeted, problem, request.budget_tokens)
        return self.effort.render(problem=problem.strip(), effort=request.effort)

    def upper_bound_tokens(self, budget_tokens: int | None = None, effort: str | None = None) -> int | None:
        """The longest reasoning the request accepts (what enforcement cuts at); None for a share mode."""
        request = self.resolve(budget_tokens, effort)
        return None if request.budget_tokens is None else self.spec.bounds(request.budget_tokens)[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "tiers_tokens": list(self.spec.tiers_tokens),
            "fidelity": self.spec.shape.value,
            "tolerance": self.spec.tolerance,
            "user_template": {"ref": self.budgeted.ref, "text": self.budgeted.text},
            "effort_template": {"ref": self.effort.ref, "text": self.effort.text},
            "modes": [{"name": m.name, "tier_tokens": m.tier_tokens, "share": m.share} for m in self.modes],
            "default": self.default,
            "leak_answer_tokens": self.leak_answer_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetContract:
        from bard_core.budget import FidelityShape

        leak = int(data.get("leak_answer_tokens", 256))
        spec = BudgetSpec(tuple(data["tiers_tokens"]), FidelityShape(data["fidelity"]), float(data["tolerance"]), leak)
        return cls(
            spec=spec,
            budgeted=PromptTemplate(data["user_template"]["ref"], data["user_template"]["text"]),
            effort=PromptTemplate(data["effort_template"]["ref"], data["effort_template"]["text"]),
            modes=tuple(EffortMode(m["name"], m.get("tier_tokens"), m.get("share")) for m in data["modes"]),
            default=data.get("default"),
            leak_answer_tokens=leak,
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    def chat_template(self, base: str) -> str:
        """``base`` (the student's own chat template) behind a prelude that rewrites the last user message
        into the contract's user turn, from the ``thinking_budget`` / ``reasoning_effort`` keywords."""
        return _prelude(self) + base


# --------------------------------------------------------------------------- the Jinja translation


def _segments(template: PromptTemplate) -> list[tuple[str, str | None]]:
    """(literal text, field name or None) pairs of a prompt file, refusing what Jinja cannot mirror."""
    out: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in string.Formatter().parse(template.text):
        if spec or conversion:
            raise PromptError(
                f"prompt {template.ref!r} formats {{{field}}} with {spec or '!' + str(conversion)!r}; the exported "
                "chat template cannot reproduce format specs: write the field plainly, e.g. {budget_tokens}"
            )
        out.append((literal, field))
    return out


def _jinja_string(text: str) -> str:
    """A Jinja string literal of ``text`` (Jinja decodes literals with ``unicode-escape``)."""
    safe = set(string.ascii_letters + string.digits + " .,:;!?()[]-_+=*/#@$%^&|<>~`")
    return "'" + "".join(c if c in safe else f"\\U{ord(c):08x}" for c in text) + "'"


def _jinja_concat(template: PromptTemplate, values: Mapping[str, str]) -> str:
    """The template as one Jinja expression: literals and the given variable per field."""
    parts: list[str] = []
    for literal, field in _segments(template):
        if literal:
            parts.append(_jinja_string(literal))
        if field is not None:
            parts.append(f"({values[field]})|string")
    return " ~ ".join(parts) or "''"


def _prelude(contract: BudgetContract) -> str:
    low, high = contract.spec.tiers_tokens[0], contract.spec.tiers_tokens[-1]
    effort_branches = "".join(
        f"{{%- elif _effort == {_jinja_string(m.name)} -%}}"
        + (
            f"{{%- set _budget = {m.tier_tokens} -%}}"
            if m.tier_tokens is not None
            else f"{{%- set _mode = {_jinja_string(m.name)} -%}}"
        )
        for m in contract.modes
    )
    default = contract.default if contract.default is not None else high
    default_set = f"{{%- set _budget = {default} -%}}" if isinstance(default, int) else ""
    default_effort = "" if isinstance(default, int) else _jinja_string(str(default))
    names = ", ".join(contract.mode_names) or "(none)"
    budget_text = _jinja_concat(contract.budgeted, {"problem": "_problem", "budget_tokens": "_budget"})
    effort_text = _jinja_concat(contract.effort, {"problem": "_problem", "effort": "_mode"})
    return (
        "{#- BARD budget contract: thinking_budget (tokens) or reasoning_effort (a mode) renders the user turn the "
        "student was trained on; see bard_budget.json. -#}\n"
        "{%- set _budget = none -%}{%- set _mode = none -%}{%- set _effort = none -%}"
        "{%- if thinking_budget is defined and thinking_budget is not none -%}"
        "{%- set _budget = thinking_budget | int -%}"
        f"{{%- if _budget < {low} or _budget > {high} -%}}"
        f"{{{{- raise_exception('thinking_budget ' ~ (thinking_budget|string) ~ ' is outside the trained range "
        f"[{low}, {high}] tokens') -}}}}{{%- endif -%}}"
        "{%- elif reasoning_effort is defined and reasoning_effort is not none -%}"
        "{%- set _effort = reasoning_effort -%}"
        f"{{%- else -%}}{default_set}"
        + (f"{{%- set _effort = {default_effort} -%}}" if default_effort else "")
        + "{%- endif -%}"
        "{%- if _effort is not none -%}{%- if false -%}" + effort_branches + "{%- else -%}"
        f"{{{{- raise_exception('unknown reasoning_effort ' ~ (_effort|string) ~ '; this model has: {names}') -}}}}"
        "{%- endif -%}{%- endif -%}"
        "{%- set _ns = namespace(last=-1, messages=[]) -%}"
        "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set _ns.last = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}"
        "{%- for m in messages -%}"
        "{%- if loop.index0 == _ns.last -%}"
        "{%- if m['content'] is not string -%}{{- raise_exception('the budget contract needs a text user message') -}}"
        "{%- endif -%}"
        "{%- set _problem = m['content'] | trim -%}"
        f"{{%- if _budget is not none -%}}{{%- set _content = {budget_text} -%}}"
        f"{{%- else -%}}{{%- set _content = {effort_text} -%}}{{%- endif -%}}"
        "{%- set _ns.messages = _ns.messages + [dict(m, content=_content)] -%}"
        "{%- else -%}{%- set _ns.messages = _ns.messages + [m] -%}{%- endif -%}"
        "{%- endfor -%}"
        "{%- set messages = _ns.messages -%}\n"
    )
