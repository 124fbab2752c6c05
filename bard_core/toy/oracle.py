"""The oracle engine: plays teacher and compressor for toy-world problems.

It implements the ``Engine`` protocol and reads the problem's worked program from request metadata
(``metadata["role"]`` is ``teacher`` or ``compressor``; ``metadata["problem_meta"]`` is the toy meta).

- As **teacher** it writes long, redundant chains of thought: a restatement, a plan, one sentence per
  step, self-checks, detours and a final check. With probability ``error_rate`` one step slips by a
  few units and the error propagates to the answer, so verification matters.
- As **compressor** it picks, from progressively longer renderings of the same steps, the one whose
  *estimated* length is closest to the requested budget. Like an LLM it cannot count the student's
  tokens: it estimates from characters with a noisy chars-per-token guess, so it misses sometimes;
  on a retry it recalibrates from the measured length the feedback gives it. With probability
  ``answer_drop_rate`` it loses the answer (reports an intermediate value).

With a ``price`` it charges like an API: ``cost_usd`` of each result is its prompt and completion tokens
(the oracle's own count, ``oracle_token_count``) at that price, never more than ``worst_case_request_usd``
of the request. It cannot measure token entropy: ``mean_token_entropy`` stays None.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import THINK_CLOSE, THINK_OPEN
from bard_core.config.engines import PriceConfig
from bard_core.engine import (
    Completion,
    ErrorKind,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    failed,
    price_usd,
    refuse_prefix,
)
from bard_core.toy import lab
from bard_core.toy.world import EvaluatedStep, Solution, is_toy_meta, solve

# Bump when the oracle's outputs change, so artifacts made by the old oracle are not reused.
ORACLE_VERSION = 5  # 5: the lab families (bard_core.toy.lab)
_WORD = re.compile(r"\d|\w+|[^\w\s]")
# An English-text rule of thumb; wrong for digit-split tokenizers on math, which is what makes it miss.
_CHARS_PER_TOKEN_GUESS = 3.2


def oracle_token_count(text: str) -> int:
    """The oracle's own tokenizer (for usage accounting only): digits, words and punctuation."""
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class OracleSettings:
    model: str = "toy-oracle"
    error_rate: float = 0.15
    detour_rate: float = 1.0
    miss_sigma: float = 0.35
    answer_drop_rate: float = 0.03
    price: PriceConfig | None = None  # None: free (the toy default)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _fmt(step: EvaluatedStep, style: str) -> str:
    expr = f"{step.left} {step.symbol} {step.right}"
    if style == "terse":
        return f"{step.left}{step.symbol}{step.right}={step.value}"
    if style == "medium":
        return f"{expr} = {step.value}."
    about = f" ({step.note})" if step.note else ""
    return f"{expr} gives {step.value}{about}."


_VERBOSE_OPENERS = ("Now", "Next,", "Then", "So", "Okay,", "After that,")
_DETOURS = (
    "Hmm, maybe there is a shortcut here, like grouping the numbers differently. "
    "That would not really save anything, so I will keep going step by step.",
    "Wait, I should make sure I read the problem correctly. Yes, that is what it asks.",
    "Let me think about whether the order matters. For these operations I will just follow the order given.",
    "Actually, an estimate first could help me catch mistakes: the result should be of a similar size.",
)


def _teacher_text(solution: Solution, rng: random.Random, settings: OracleSettings, temperature: float) -> str:
    lines = [
        f"Okay, let me restate the problem: {solution.restatement}",
        "I will work it out one step at a time.",
    ]
    if solution.facts:
        lines.append("First, what I need to know: " + " ".join(solution.facts))
    spread = settings.detour_rate * (0.5 + temperature)
    for step in solution.steps:
        lines.append(f"{rng.choice(_VERBOSE_OPENERS)} {_fmt(step, 'verbose')}")
        if rng.random() < 0.5 * spread:
            lines.append(
                f"Let me double-check that: {step.left} {step.symbol} {step.right}... yes, it is {step.value}."
            )
        if rng.random() < 0.25 * spread:
            lines.append(rng.choice(_DETOURS))
    lines.append(f"Let me check the whole thing once more: {solution.expression} = {solution.value}. That matches.")
    lines.append(f"So the answer is {solution.value}.")
    return f"{THINK_OPEN}\n" + "\n".join(lines) + f"\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{solution.value}}}."


def _candidates(solution: Solution) -> list[str]:
    """Renderings of the same solution, from a one-liner up to teacher-like verbosity: a grid of step
    renderings x optional sentences, dense enough that some rendering lands near most budgets."""
    steps, value = solution.steps, solution.value
    one_line = f"{solution.expression} = {value}".replace(" ", "")
    facts = [" ".join(solution.facts)] if solution.facts else []
    bodies = [[one_line]]
    bodies += [[one_line, *(_fmt(s, "terse") for s in steps[-k:])] for k in range(1, len(steps) + 1)]
    for rich, plain in (("medium", "terse"), ("verbose", "medium")):
        bodies += [
            [*facts, *(_fmt(s, rich if i < k else plain) for i, s in enumerate(steps))] for k in range(len(steps) + 1)
        ]
    question = f"Question: {solution.restatement}"
    check = f"Check: {solution.expression} = {value}."
    rechecks = [f"Double-check: {s.left} {s.symbol} {s.right} is {s.value}." for s in steps]
    conclusion = f"So the answer is {value}."
    decorations: list[tuple[list[str], list[str]]] = [
        ([], []),
        ([], [conclusion]),
        ([], [check, conclusion]),
        ([question], [conclusion]),
        ([question], [check, conclusion]),
        ([question], [check, *rechecks, conclusion]),
        ([question], [check, *rechecks, *_DETOURS[:2], conclusion]),
    ]
    out = ["\n".join([*before, *body, *after]) for before, after in decorations for body in bodies]
    return sorted(dict.fromkeys(out), key=len)  # distinct renderings, shortest first


def _compress_text(meta: Mapping[str, Any], settings: OracleSettings, rng: random.Random) -> str:
    problem = meta["problem_meta"]
    if lab.LAB_TASK_KEY in problem:
        terms = list(problem["terms"])
        candidates = lab.renderings(terms)
        value, before_last = lab.lab_value(problem), sum(terms[:-1])
    else:
        solution = solve(problem)
        candidates = _candidates(solution)
        value = solution.value
        before_last = solution.steps[-2].value if len(solution.steps) > 1 else value
    budget = int(meta["budget_tokens"])
    previous = meta.get("previous") or {}
    sigma = settings.miss_sigma
    chars_per_token = _CHARS_PER_TOKEN_GUESS
    if previous.get("measured_tokens"):
        # Feedback, used the way an LLM would: move in the direction it was told, recalibrating its
        # chars-per-token guess on the attempt it was shown.
        prev_chars = max(len(previous["reasoning"]), 1)
        chars_per_token = prev_chars / max(int(previous["measured_tokens"]), 1)
        sigma /= 2
        if previous.get("reason") == "too_long":
            candidates = [c for c in candidates if len(c) < prev_chars] or candidates
        elif previous.get("reason") == "too_short":
            candidates = [c for c in candidates if len(c) > prev_chars] or candidates
    target_chars = budget * chars_per_token * math.exp(rng.gauss(0.0, sigma))
    reasoning = min(candidates, key=lambda text: abs(len(text) - target_chars))
    if rng.random() < settings.answer_drop_rate and before_last != value:
        value = before_last  # loses the last step: the answer no longer verifies
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{value}}}."


def _teacher_completion(
    problem: Mapping[str, Any], rng: random.Random, settings: OracleSettings, temperature: float
) -> str:
    """A chain of thought and answer; with probability ``error_rate`` one step slips and the error propagates."""
    slipped = rng.random() < settings.error_rate
    delta = rng.choice([-10, -2, -1, 1, 2, 10])
    if lab.LAB_TASK_KEY in problem:
        terms = list(problem["terms"])
        slip = (rng.randrange(lab.lab_steps(problem)), delta) if slipped else None
        detour_rate = settings.detour_rate * (0.5 + temperature)
        reasoning = lab.teacher_text(terms, rng, detour_rate, slip)
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{lab.lab_value(problem, slip)}}}."
    solution = solve(problem)
    if slipped:
        solution = solve(problem, (rng.randrange(len(solution.steps)), delta))
    return _teacher_text(solution, rng, settings, temperature)


def _truncate(text: str, max_new_tokens: int) -> tuple[str, FinishReason]:
    matches = list(_WORD.finditer(text))
    if len(matches) <= max_new_tokens:
        return text, "stop"
    return text[: matches[max_new_tokens - 1].end()], "length"


class OracleEngine:
    """Teacher and compressor for the toy world (see module docstring)."""

    def __init__(self, settings: OracleSettings | None = None) -> None:
        self.settings = settings or OracleSettings()
        self.model = self.settings.model
        self.backend = f"toy oracle v{ORACLE_VERSION}"

    def _one(self, request: GenerationRequest) -> GenerationResult:
        meta = request.metadata
        prompt_tokens = sum(oracle_token_count(m["content"]) for m in request.messages)
        if not is_toy_meta(meta.get("problem_meta") or {}):
            return failed(
                request.request_id,
                ErrorKind.UNSUPPORTED,
                "the oracle engine serves toy-world problems only (no toy metadata on this request); "
                "use a real engine for other problem sources",
                prompt_tokens,
                attempts=1,
            )
        completions = []
        for idx in range(request.params.n):
            rng = _rng(request.params.seed, request.request_id, idx)
            if meta.get("role") == "compressor":
                text = _compress_text(meta, self.settings, rng)
            else:
                text = _teacher_completion(meta["problem_meta"], rng, self.settings, request.params.temperature)
            text, finish = _truncate(text, request.params.max_new_tokens)
            completions.append(Completion(text, finish, oracle_token_count(text)))
        cost = price_usd(self.settings.price, prompt_tokens, sum(c.completion_tokens for c in completions))
        return GenerationResult(request.request_id, tuple(completions), prompt_tokens, cost_usd=cost)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [refuse_prefix(r, self.backend) if r.prefix else self._one(r) for r in requests]

    def close(self) -> None:
        return None
