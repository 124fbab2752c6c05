"""Evaluation across budgets: request rows, one batch of generations judged by ``judge`` (with the
truncation baseline of ``truncation``), and generations aggregated into metrics with bootstrap confidence
intervals. The training stages' probe is this evaluation too, on the validation split (``bard_pipeline.infra.probe``).

A generation row (schema ``schemas.GENERATIONS``) is one of ``k`` samples of one model on one problem of
one benchmark at one budget. Accuracy is pass@1 averaged over the ``k`` samples of a problem, then over
problems; its confidence interval resamples *problems* (the unit that was drawn from a population), each
keeping its ``k`` samples, so more samples per problem tighten the interval only as far as they reduce the
within-problem noise.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec, TokenCounter, render_user
from bard_core.chat_contract import BudgetContract
from bard_core.engine import Engine, GenerationRequest, GenerationResult, SamplingParams, Usage
from bard_core.judge import NO_OUTPUT_COLUMNS, length_summary, verdict_columns, verdicts
from bard_core.prompting import PromptTemplate
from bard_core.schemas import EvalMode
from bard_core.truncation import Cut, TokenCodec, finish_cut, student_metadata, truncation_cuts


@dataclass(frozen=True)
class EvalSettings:
    """How one model is evaluated: picklable, so it travels to an engine actor inside a job spec.

    A budgeted request may generate ``ceil(budget × max_new_tokens_factor) + answer_tokens`` tokens (a
    factor of 0 makes that a fixed limit of ``answer_tokens``, as the probe uses)."""

    label: str
    spec: BudgetSpec
    budgets_tokens: tuple[int, ...]  # the truncation baseline's grid
    samples_per_problem: int
    temperature: float
    top_p: float
    seed: int
    max_new_tokens_factor: float
    answer_tokens: int
    truncation_max_new_tokens: int = 0
    truncation_answer_tokens: int = 0

    def params(self, request: Mapping[str, Any]) -> SamplingParams:
        if request["mode"] == EvalMode.BUDGET:
            max_new = math.ceil(request["budget_tokens"] * self.max_new_tokens_factor) + self.answer_tokens
        elif request["mode"] == EvalMode.EFFORT:  # no bound of its own: as long as the largest tier may run
            max_new = math.ceil(self.spec.tiers_tokens[-1] * self.max_new_tokens_factor) + self.answer_tokens
        else:
            max_new = self.truncation_max_new_tokens
        return SamplingParams(self.samples_per_problem, self.temperature, self.top_p, max_new, self.seed)


@dataclass(frozen=True)
class TruncationPrompt:
    """Who the truncation baseline runs on and what its prompt shows (None: no budget, the problem alone)."""

    model: str
    prompt_budget_tokens: int | None = None


# --------------------------------------------------------------------------- requests


def eval_requests(
    benchmark: str,
    problems: Sequence[Mapping[str, Any]],
    models: Sequence[str],
    budgets: Sequence[int],
    budgeted: PromptTemplate,
    plain: PromptTemplate,
    truncation: TruncationPrompt | None = None,
    contract: BudgetContract | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Request rows (``schemas.EVAL_REQUESTS``) per model label: one per (problem, budget) with the budget
    in the prompt, and one per problem for the truncation baseline. With a ``contract`` that has effort
    modes: one per (problem, share mode) with the mode's prompt (mode ``effort``, budget 0: its target is a
    share of a trace the benchmark does not have), and a tier mode's tier joins the budgets if it is not there."""
    out: dict[str, list[dict[str, Any]]] = {}
    modes = contract.modes if contract is not None else ()
    budgets = [*budgets, *sorted({m.tier_tokens for m in modes if m.tier_tokens is not None} - set(budgets))]
    shares = [m.name for m in modes if m.share is not None]
    for p in problems:
        common = {"benchmark": benchmark, "problem_id": p["problem_id"], "answer": p["answer"], "meta": p["meta"],
                  "grader": p["grader"]}  # fmt: skip
        for label in models:
            for budget in budgets:
                prompt = [{"role": "user", "content": render_user(budgeted, p["problem"], budget)}]
                out.setdefault(label, []).append({**common, "model": label, "mode": EvalMode.BUDGET.value,
                                                  "budget_tokens": budget, "prompt": prompt})  # fmt: skip
            for name in shares:
                assert contract is not None  # the share modes are the contract's
                prompt = [{"role": "user", "content": contract.render(p["problem"], effort=name)}]
                out.setdefault(label, []).append({**common, "model": label, "mode": EvalMode.EFFORT.value,
                                                  "budget_tokens": 0, "effort": name, "prompt": prompt})  # fmt: skip
        if truncation is not None:
            shown = truncation.prompt_budget_tokens
            text = render_user(budgeted, p["problem"], shown) if shown else plain.render(problem=p["problem"]).strip()
            out.setdefault(truncation.model, []).append(
                {**common, "model": truncation.model, "mode": EvalMode.TRUNCATION.value,
                 "budget_tokens": shown or 0, "prompt": [{"role": "user", "content": text}]}
            )  # fmt: skip
    return out


def generation_order(rows: Sequence[Mapping[str, Any]], settings: EvalSettings) -> list[Mapping[str, Any]]:
    """The request rows in the order they are generated: one run of rows per (mode, budget), by token limit,
    longest first, and within a run by prompt length, as the engine sorts the requests of one call.

    The engine batches only requests that share sampling parameters, and a batch runs until its longest
    generation stops. In the given order (problem-major, every budget of a problem in turn) every batch the
    pool hands an engine mixes all budgets, so each engine call splits into one small batch per budget; in
    this order a batch is one budget, as wide as the engine allows, and its prompts are alike in length, as
    in one engine call over all requests (so are, mostly, their generations: a batch runs as long as its
    longest). Longest limits first: with several replicas the slowest work starts first and the pool does
    not wait on a long tail. ``in_request_order`` puts the generations back for the metrics."""
    return sorted(rows, key=lambda r: (-settings.params(r).max_new_tokens, str(r["mode"]), r["budget_tokens"],
                                       _prompt_chars(r)))  # fmt: skip


def _prompt_chars(row: Mapping[str, Any]) -> int:
    return sum(len(str(message["content"])) for message in row["prompt"])


def in_request_order(
    generations: Sequence[Mapping[str, Any]], requests: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Generation rows back in the order of their request rows' problems (per model, in ``requests``'
    order; a stable sort), whatever order they were generated in: what ``summarize`` reads, so its figures,
    bootstrap intervals included, do not depend on ``generation_order``."""
    rank: dict[tuple[Any, ...], int] = {}
    for row in requests:
        rank.setdefault((row["model"], row["benchmark"], row["problem_id"]), len(rank))
    return sorted(generations, key=lambda g: rank[(g["model"], g["benchmark"], g["problem_id"])])


def prepared(row: Mapping[str, Any]) -> dict[str, Any]:
    """A request row with its request id and its ``meta`` parsed (once, where it enters the batch)."""
    request_id = f"{row['benchmark']}|{row['problem_id']}|{row['mode']}|{row['budget_tokens']}"
    if row.get("effort") is not None:  # the share modes of a problem share mode and budget
        request_id += f"|{row['effort']}"
    return {**row, "request_id": request_id, "problem_meta": json.loads(row["meta"])}


# --------------------------------------------------------------------------- one batch


def evaluate_batch(
    engine: Engine, counter: TokenCodec, rows: Sequence[Mapping[str, Any]], settings: EvalSettings
) -> tuple[list[list[dict[str, Any]]], Usage]:
    """Generate and judge a batch of request rows: per request, its generation rows (``schemas.GENERATIONS``
    plus the verdict's ``parsed`` and ``fidelity``). A truncation request yields its unconstrained rows and,
    after one more engine call for all forced answers of the batch, its truncated rows."""
    usage, requests = Usage(), [prepared(row) for row in rows]
    results = engine.generate([_generation_request(r, settings) for r in requests])
    usage.add(results)
    out: list[list[dict[str, Any]]] = []
    forced: list[tuple[int, Cut]] = []
    answer_params = SamplingParams(1, 0.0, 1.0, settings.truncation_answer_tokens, settings.seed)
    for index, (request, result) in enumerate(zip(requests, results, strict=True)):
        generated = _generation_rows(request, result, counter, settings)
        if request["mode"] in (EvalMode.BUDGET, EvalMode.EFFORT):
            out.append(generated)
            continue
        kept, cuts = truncation_cuts(request, generated, settings.budgets_tokens, counter, answer_params)
        out.append(kept)
        forced += [(index, cut) for cut in cuts]
    if forced:
        answers = engine.generate([cut.request for _, cut in forced])
        usage.add(answers)
        for (index, cut), answer in zip(forced, answers, strict=True):
            out[index].append(finish_cut(requests[index], cut, answer, settings.spec, counter))
    return out, usage


def _generation_request(request: Mapping[str, Any], settings: EvalSettings) -> GenerationRequest:
    metadata = student_metadata(request)
    return GenerationRequest(request["request_id"], request["prompt"], settings.params(request), metadata)


def _generation_rows(
    request: Mapping[str, Any], result: GenerationResult, counter: TokenCounter, settings: EvalSettings
) -> list[dict[str, Any]]:
    mode = EvalMode(request["mode"]) if request["mode"] != EvalMode.TRUNCATION else EvalMode.UNCONSTRAINED
    identity = {"model": settings.label, "benchmark": request["benchmark"], "problem_id": request["problem_id"],
                "mode": mode.value, "budget_tokens": request["budget_tokens"]}  # fmt: skip
    if request.get("effort") is not None:
        identity["effort"] = request["effort"]
    if result.error is not None:  # e.g. a prompt longer than the context: one row, counted as an error
        failed = {"text": "", "reasoning_tokens": 0, "completion_tokens": 0, "finish_reason": "error"}
        return [{**identity, "sample_idx": 0, **failed, **NO_OUTPUT_COLUMNS, "error": result.error}]
    texts = [c.text for c in result.completions]
    n, budget = len(texts), int(request["budget_tokens"])
    judged = verdicts(texts, [request["answer"]] * n, [request["grader"]] * n, [request["problem_meta"]] * n,
                      [budget] * n, settings.spec, counter)  # fmt: skip
    return [
        {
            **identity,
            "sample_idx": k,
            "text": c.text,
            **verdict_columns(v),
            "error": None,
            "completion_tokens": c.completion_tokens,
            "finish_reason": c.finish_reason,
        }
        for k, (c, v) in enumerate(zip(result.completions, judged, strict=True))
    ]


# --------------------------------------------------------------------------- confidence intervals


def bootstrap_mean_ci(
    groups: Sequence[Sequence[float]], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-group means, with a percentile bootstrap interval that resamples groups (problems).

    Returns (mean, low, high). One group or none gives a degenerate interval at the mean (or NaNs)."""
    means = [statistics.fmean(g) for g in groups if g]
    if not means:
        return float("nan"), float("nan"), float("nan")
    point = statistics.fmean(means)
    if len(means) == 1:
        return point, point, point
    rng = random.Random(seed)
    n = len(means)
    draws = sorted(statistics.fmean(rng.choices(means, k=n)) for _ in range(samples))
    tail = (1.0 - confidence) / 2.0
    low = draws[int(tail * (samples - 1))]
    high = draws[round((1.0 - tail) * (samples - 1))]
    return point, low, high


# --------------------------------------------------------------------------- aggregation

GROUP_KEYS = ("model", "benchmark", "mode", "budget_tokens")


def group_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A metrics group: ``GROUP_KEYS``, and the effort mode's name for an effort row (its modes share mode
    and budget)."""
    key = tuple(row[k] for k in GROUP_KEYS)
    return (*key, row["effort"]) if row.get("effort") is not None else key


def _fraction(flags: Sequence[bool]) -> float:
    return statistics.fmean(1.0 if f else 0.0 for f in flags) if flags else float("nan")


def summarize(
    rows: Sequence[Mapping[str, Any]],
    spec: BudgetSpec,
    bootstrap_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One metrics row per (model, benchmark, mode, budget). Rows that failed to generate (``error``) are
    counted in ``errors`` and left out of every other figure."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[group_key(row)].append(row)
    reference = _unconstrained_lengths(rows)
    ordered = sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0]))
    return [_metrics_row(key, group, spec, reference, (bootstrap_samples, confidence, seed)) for key, group in ordered]


def _metrics_row(
    key: tuple[Any, ...],
    group: Sequence[Mapping[str, Any]],
    spec: BudgetSpec,
    reference: Mapping[tuple[str], float],
    bootstrap: tuple[int, float, int],
) -> dict[str, Any]:
    ok = [r for r in group if r.get("error") is None]
    model, benchmark, mode, budget = key[:4]
    per_problem: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        per_problem[r["problem_id"]].append(1.0 if r["correct"] else 0.0)
    accuracy, low, high = bootstrap_mean_ci(list(per_problem.values()), *bootstrap)
    # Unconstrained rows (budget 0) have no budget to be measured against: their fit figures are NaN.
    lengths = length_summary([int(r["reasoning_tokens"]) for r in ok], int(budget), spec)
    unconstrained = reference.get((benchmark,))
    return {
        "model": model,
        "benchmark": benchmark,
        "mode": mode,
        "budget_tokens": int(budget),
        "problems": len(per_problem),
        "generations": len(ok),
        "errors": len(group) - len(ok),
        "accuracy": accuracy,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "mean_reasoning_tokens": lengths["mean_tokens"],
        "median_reasoning_tokens": lengths["median_tokens"],
        "mean_relative_deviation": lengths["mean_relative_deviation"],
        "within_tolerance": lengths["within_tolerance"],
        "over_budget": lengths["over_budget"],
        "unclosed": _fraction([not r["closed"] for r in ok]),
        "unparsed": sum(bool(r["unparsed"]) for r in ok),
        "tokens_saved": 1.0 - lengths["mean_tokens"] / unconstrained if unconstrained else float("nan"),
        "effort": key[4] if len(key) > 4 else None,
        **_answer_figures(ok),
    }


def _answer_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean answer length and leak rate of judged rows; NaN for rows written before verdicts had them."""
    counted = [r for r in rows if r.get("answer_tokens") is not None and r.get("leaked") is not None]
    return {
        "mean_answer_tokens": statistics.fmean(int(r["answer_tokens"]) for r in counted) if counted else math.nan,
        "leak_rate": _fraction([bool(r["leaked"]) for r in counted]),
    }


def _unconstrained_lengths(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str], float]:
    """Mean reasoning length of the unconstrained reference per benchmark (absent: no reference)."""
    lengths: dict[tuple[str], list[int]] = defaultdict(list)
    for row in rows:
        if row["mode"] == EvalMode.UNCONSTRAINED and row.get("error") is None:
            lengths[(row["benchmark"],)].append(int(row["reasoning_tokens"]))
    return {key: statistics.fmean(values) for key, values in lengths.items() if values}


def recompute_accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], float]:
    """Accuracy per (model, benchmark, mode, budget) straight from generations: the report's cross-check."""
    per_problem: dict[tuple[Any, ...], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("error") is None:
            per_problem[group_key(row)][row["problem_id"]].append(bool(row["correct"]))
    return {
        key: statistics.fmean(statistics.fmean(1.0 if c else 0.0 for c in flags) for flags in problems.values())
        for key, problems in per_problem.items()
    }
