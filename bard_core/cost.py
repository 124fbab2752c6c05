"""What a run cost: the teacher's requests, tokens and dollars, and each role's wall, CPU and GPU seconds.

Every figure is read from the stage manifests a run links (``timings``, ``usage``, ``stats.precision``), so
it is what each *artifact* cost to build. A stage the run skipped (its artifact was committed) or reused
(``--from-run``) still counts its manifest's figures, once, and is flagged ``reused``: the run did not pay
them again, but its result rests on them — the question this answers is "what did the data cost?". An
artifact linked under two entries is counted once.

Definitions:

- **teacher requests** are the HTTP calls of teacher-role stages, retries included (``usage.calls``): what
  a provider bills and what ``max_requests`` caps; ``asked`` is the generations asked for (``usage.requests``);
- **CPU seconds** are the stage process's (``timings.cpu_s``) plus its engine workers' (``worker_cpu_s``);
- **GPU seconds** are reserved ones: an engine stage's pool wall × replicas × GPUs per replica
  (``gpu_s_reserved``); a training stage's train runtime × the GPUs its workers held (``usage.gpus`` when
  the manifest records it, else the run config's ``resources.workers`` when ``use_gpu`` and the recorded
  training device is CUDA), else 0;
- a missing or non-numeric field counts as 0 (older manifests, stages without an engine).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bard_core.report import _markdown_table


class Role(str, Enum):
    """Who did a stage's work."""

    TEACHER = "teacher"  # the expensive model whose queries are the budget
    ASSISTANT = "assistant"  # BRIDGE's teacher assistant: scoring, its own SFT, amplification
    COMPRESSOR = "compressor"  # rewriting gold traces to smaller budgets
    STUDENT = "student"  # training the student
    EVALUATION = "evaluation"
    PIPELINE = "pipeline"  # data plumbing: tokenizer, models, ingest, materialize (and any stage not listed)


ROLE_OF_STAGE: dict[str, Role] = {
    "tokenizer": Role.PIPELINE,
    "model": Role.PIPELINE,
    "ingest": Role.PIPELINE,
    "select": Role.ASSISTANT,
    "sample": Role.TEACHER,
    "assistant": Role.ASSISTANT,
    "amplify": Role.ASSISTANT,
    "compress": Role.COMPRESSOR,
    "materialize": Role.PIPELINE,
    "sft": Role.STUDENT,
    "rl": Role.STUDENT,
    "evaluate": Role.EVALUATION,
}
"""Stage name -> role, in pipeline order (the order of a cost table); a run-manifest entry with a label
(``model:toy-student``) takes its stage's role."""

TRAINING_SECTIONS: dict[str, tuple[str, ...]] = {"sft": ("sft",), "rl": ("rl",), "assistant": ("bridge", "sft")}
"""Training stage -> where its section (with ``resources``) sits in the run config."""

REUSED_STATUSES = frozenset({"skipped", "reused"})
"""Run-manifest stage statuses whose artifact this run did not build."""

_ENGINE_FIELDS = (
    "requests",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "gpu_s_reserved",
    "worker_cpu_s",
)


def role_of(stage: str) -> Role:
    return ROLE_OF_STAGE.get(stage.split(":", 1)[0], Role.PIPELINE)


def _order(stage: str) -> int:
    """A run-manifest key's place in pipeline order; stages not listed go last."""
    names = list(ROLE_OF_STAGE)
    name = stage.split(":", 1)[0]
    return names.index(name) if name in names else len(names)


def _num(value: Any) -> float:
    """A manifest figure as a float; absent, None or not a number: 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _engine_usage(usage: Mapping[str, Any]) -> dict[str, float]:
    """Engine figures summed over every engine the stage ran: ``evaluate`` records one set per model label
    (``sft_calls``, ``rl_calls``, ...), engine stages one unprefixed set. A set is found by its ``calls``."""
    prefixes = {key[: -len("calls")] for key in usage if key == "calls" or key.endswith("_calls")}
    return {name: sum(_num(usage.get(p + name)) for p in prefixes) for name in _ENGINE_FIELDS}


def _training_gpu_s(manifest: Mapping[str, Any], usage: Mapping[str, Any], gpus: float) -> float:
    runtime = _num(usage.get("train_runtime_s"))
    if "gpus" in usage:  # recorded by the stage itself: trust it over the config
        return runtime * _num(usage["gpus"])
    device = str(_mapping(_mapping(manifest.get("stats")).get("precision")).get("device") or "")
    if device and not device.startswith("cuda"):  # trained on CPU whatever the config asked for
        return 0.0
    return runtime * gpus


@dataclass(frozen=True)
class StageCost:
    """One run-manifest entry's figures (its artifact's manifest)."""

    stage: str  # the run-manifest key, label included ("model:toy-student")
    role: Role
    wall_s: float
    cpu_s: float
    gpu_s: float
    requests: float  # generations asked of its engines
    calls: float  # backend calls, retries included
    prompt_tokens: float
    completion_tokens: float
    cost_usd: float
    reused: bool  # the run did not build it (skipped: committed; or reused from an earlier run)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "role": self.role.value,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "gpu_s": round(self.gpu_s, 3),
            "requests": int(self.requests),
            "calls": int(self.calls),
            "prompt_tokens": int(self.prompt_tokens),
            "completion_tokens": int(self.completion_tokens),
            "cost_usd": round(self.cost_usd, 6),
            "reused": self.reused,
        }


def stage_cost(stage: str, manifest: Mapping[str, Any], reused: bool = False, gpus: float = 0.0) -> StageCost:
    """The cost of ``stage`` from its manifest (as JSON); ``gpus``: GPUs its training workers held per the
    run config (``training_gpus``), used only for a training stage whose manifest does not record them."""
    timings, usage = _mapping(manifest.get("timings")), _mapping(manifest.get("usage"))
    engine = _engine_usage(usage)
    return StageCost(
        stage=stage,
        role=role_of(stage),
        wall_s=_num(timings.get("wall_s")),
        cpu_s=_num(timings.get("cpu_s")) + engine["worker_cpu_s"],
        gpu_s=engine["gpu_s_reserved"] + _training_gpu_s(manifest, usage, gpus),
        requests=engine["requests"],
        calls=engine["calls"],
        prompt_tokens=engine["prompt_tokens"],
        completion_tokens=engine["completion_tokens"],
        cost_usd=engine["cost_usd"],
        reused=reused,
    )


@dataclass(frozen=True)
class TeacherCost:
    """What the teacher-role stages asked of the teacher."""

    requests: float = 0.0  # HTTP calls, retries included
    asked: float = 0.0  # generations asked for
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": int(self.requests),
            "asked": int(self.asked),
            "prompt_tokens": int(self.prompt_tokens),
            "completion_tokens": int(self.completion_tokens),
            "tokens": int(self.tokens),
            "cost_usd": round(self.cost_usd, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TeacherCost:
        """From ``as_dict`` output (a run manifest's ``cost.teacher``); missing figures are 0."""
        names = ("requests", "asked", "prompt_tokens", "completion_tokens", "cost_usd")
        return cls(**{name: _num(data.get(name)) for name in names})


@dataclass(frozen=True)
class Compute:
    """Seconds spent: wall, CPU (process and engine workers) and reserved GPU."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_s: float = 0.0

    def plus(self, stage: StageCost) -> Compute:
        return Compute(self.wall_s + stage.wall_s, self.cpu_s + stage.cpu_s, self.gpu_s + stage.gpu_s)

    def as_dict(self) -> dict[str, float]:
        return {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3), "gpu_s": round(self.gpu_s, 3)}


@dataclass(frozen=True)
class RunCost:
    stages: tuple[StageCost, ...]
    teacher: TeacherCost
    roles: Mapping[Role, Compute] = field(default_factory=dict)  # only roles with a stage, in Role order
    total: Compute = Compute()
    cost_usd: float = 0.0  # every engine's dollars, not only the teacher's

    def as_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher.as_dict(),
            "roles": {role.value: compute.as_dict() for role, compute in self.roles.items()},
            "total": {**self.total.as_dict(), "cost_usd": round(self.cost_usd, 6)},
            "stages": [s.as_dict() for s in self.stages],
        }


def run_cost(
    manifests: Mapping[str, Mapping[str, Any]],
    reused: Collection[str] = (),
    gpus: Mapping[str, float] | None = None,
) -> RunCost:
    """The cost of a run from its entries' manifests (run-manifest key -> manifest JSON). ``reused``: the
    keys the run did not build (``reused_stages``); ``gpus``: training stage -> GPUs (``training_gpus``)."""
    seen: set[tuple[str, str]] = set()
    stages: list[StageCost] = []
    for key, manifest in sorted(manifests.items(), key=lambda item: _order(item[0])):
        identity = (str(manifest.get("stage", key)), str(manifest.get("fingerprint", key)))
        if identity in seen:  # one artifact linked twice: it was paid for once
            continue
        seen.add(identity)
        stage_gpus = (gpus or {}).get(key, (gpus or {}).get(key.split(":", 1)[0], 0.0))
        stages.append(stage_cost(key, manifest, key in reused, stage_gpus))
    teachers = [s for s in stages if s.role is Role.TEACHER]
    teacher = TeacherCost(
        requests=sum(s.calls for s in teachers),
        asked=sum(s.requests for s in teachers),
        prompt_tokens=sum(s.prompt_tokens for s in teachers),
        completion_tokens=sum(s.completion_tokens for s in teachers),
        cost_usd=sum(s.cost_usd for s in teachers),
    )
    roles: dict[Role, Compute] = {role: Compute() for role in Role if any(s.role is role for s in stages)}
    total = Compute()
    for s in stages:
        roles[s.role] = roles[s.role].plus(s)
        total = total.plus(s)
    return RunCost(tuple(stages), teacher, roles, total, sum(s.cost_usd for s in stages))


def reused_stages(stages: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The run-manifest keys (``stages`` of a run manifest) whose artifact the run did not build."""
    return frozenset(key for key, info in stages.items() if info.get("status") in REUSED_STATUSES)


def training_gpus(config: Mapping[str, Any]) -> dict[str, float]:
    """Training stage -> GPUs its Ray Train workers held, from a run config as JSON (a run manifest's
    ``config``): ``resources.workers`` when ``resources.use_gpu``, else 0; a section not in the config: 0."""
    out: dict[str, float] = {}
    for stage, path in TRAINING_SECTIONS.items():
        section: Mapping[str, Any] = config
        for name in path:
            section = _mapping(section.get(name))
        resources = _mapping(section.get("resources"))
        out[stage] = _num(resources.get("workers", 1)) if resources.get("use_gpu") is True else 0.0
    return out


def _int(value: float) -> str:
    return f"{int(value):,}"


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def teacher_line(teacher: TeacherCost) -> str:
    """One line: the teacher's requests, tokens and dollars."""
    return (
        f"**Teacher:** {_int(teacher.requests)} requests (HTTP calls incl. retries; {_int(teacher.asked)} "
        f"generations asked), {_int(teacher.tokens)} tokens ({_int(teacher.prompt_tokens)} prompt + "
        f"{_int(teacher.completion_tokens)} completion), {_usd(teacher.cost_usd)}"
    )


def cost_markdown(cost: RunCost) -> str:
    """The teacher line, the per-stage table and the seconds per role, as markdown."""
    header = ["stage", "role", "built", "wall s", "CPU s", "GPU s", "asked", "calls", "prompt tokens",
              "completion tokens", "$"]  # fmt: skip
    rows = [header]
    for s in cost.stages:
        rows.append(
            [s.stage, s.role.value, "reused" if s.reused else "this run", f"{s.wall_s:.1f}", f"{s.cpu_s:.1f}",
             f"{s.gpu_s:.1f}", _int(s.requests), _int(s.calls), _int(s.prompt_tokens), _int(s.completion_tokens),
             _usd(s.cost_usd)]
        )  # fmt: skip
    roles = [["role", "wall s", "CPU s", "GPU s"]]
    roles += [[r.value, f"{c.wall_s:.1f}", f"{c.cpu_s:.1f}", f"{c.gpu_s:.1f}"] for r, c in cost.roles.items()]
    roles.append(["**total**", f"{cost.total.wall_s:.1f}", f"{cost.total.cpu_s:.1f}", f"{cost.total.gpu_s:.1f}"])
    note = "Reused stages count what their artifact cost when it was built; this run did not pay it again."
    return "\n\n".join([teacher_line(cost.teacher), _markdown_table(rows), _markdown_table(roles), note])
