"""The numbers of an experiment, recomputed from each arm's stored generations: per arm and budget, the
paired differences against the reference arm, and the claims with their decisions.

Definitions, stated once:

- a generation row counts when it belongs to the arm's series (its model label and mode) and did not fail
  to generate (``error``); per problem, a figure is the mean over that problem's k samples, then over problems;
- **accuracy** is pass@1 (``correct``), with a percentile bootstrap interval over problems
  (``evaluation.bootstrap_mean_ci``);
- a **short wrong answer** is wrong and not over the budget (``BudgetSpec.over`` is false): the output a
  reward that pays for length alone teaches;
- a **paired difference** (arm − reference) is taken per problem at the same budget, over the problems both
  evaluated; pooled over budgets, each problem's differences are averaged first. Its interval resamples
  problems;
- an arm's **headline accuracy** is its accuracy pooled the same way: each problem's accuracy averaged over
  the budgets, then over problems, with a bootstrap interval over problems (one number per arm, for plots
  against what the arm cost).

Decision rules (``CLAIM_RULES``): a ``beats`` claim holds when the pooled paired accuracy difference
(arm − other) has an interval above 0; ``fewer_short_wrong`` when the pooled paired short-wrong share
difference (other − arm) has an interval above 0; ``length_follows_budget`` when Spearman(budget, mean
reasoning tokens) ≥ ``SPEARMAN_MIN`` and the mean relative deviation over budgets is at most the budget
contract's tolerance. An interval that contains 0 is "not held": the experiment could not show the claim.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import BudgetSpec
from bard_core.config.experiment import ArmConfig, ClaimConfig, ClaimKind
from bard_core.evaluation import bootstrap_mean_ci
from bard_core.judge import length_summary
from bard_core.metrics import spearman

SPEARMAN_MIN = 0.9
"""Least rank correlation of mean reasoning length with the budget for "length follows the budget"."""

Row = Mapping[str, Any]
Measure = Callable[[Row], float]


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: resamples, confidence level, seed (the evaluation's settings)."""

    samples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def ci(self, groups: Sequence[Sequence[float]]) -> tuple[float, float, float]:
        return bootstrap_mean_ci(groups, self.samples, self.confidence, self.seed)


def series_rows(rows: Sequence[Row], arm: ArmConfig) -> list[Row]:
    """The generation rows of the arm's series that produced an output."""
    return [r for r in rows if r["model"] == arm.model and r["mode"] == arm.mode and r.get("error") is None]


def correct(row: Row) -> float:
    return 1.0 if row["correct"] else 0.0


def short_wrong(spec: BudgetSpec) -> Measure:
    """1 for a wrong answer that is not over its budget."""

    def measure(row: Row) -> float:
        over = spec.over(int(row["reasoning_tokens"]), int(row["budget_tokens"]))
        return 1.0 if not row["correct"] and not over else 0.0

    return measure


def per_problem(rows: Sequence[Row], measure: Measure) -> dict[int, dict[str, float]]:
    """budget -> problem -> the measure's mean over that problem's samples."""
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        values[int(r["budget_tokens"])][str(r["problem_id"])].append(measure(r))
    return {b: {p: statistics.fmean(v) for p, v in probs.items()} for b, probs in sorted(values.items())}


def arm_summary(rows: Sequence[Row], spec: BudgetSpec, boot: Bootstrap) -> list[dict[str, Any]]:
    """One row per budget: problems, generations, accuracy with its interval, length and fit figures."""
    accuracy, wrong = per_problem(rows, correct), per_problem(rows, short_wrong(spec))
    out = []
    for budget, by_problem in accuracy.items():
        mine = [r for r in rows if int(r["budget_tokens"]) == budget]
        acc, low, high = boot.ci([[v] for v in by_problem.values()])
        lengths = length_summary([int(r["reasoning_tokens"]) for r in mine], budget, spec)
        out.append(
            {
                "budget_tokens": budget,
                "problems": len(by_problem),
                "generations": len(mine),
                "accuracy": acc,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "mean_reasoning_tokens": lengths["mean_tokens"],
                "mean_relative_deviation": lengths["mean_relative_deviation"],
                "within_tolerance": lengths["within_tolerance"],
                "short_wrong": statistics.fmean(wrong[budget].values()),
            }
        )
    return out


def paired_difference(
    arm: Sequence[Row], reference: Sequence[Row], measure: Measure, boot: Bootstrap
) -> list[dict[str, Any]]:
    """arm − reference per budget (and pooled, budget ``None``), per problem over the problems both have."""
    a, b = per_problem(arm, measure), per_problem(reference, measure)
    pooled: dict[str, list[float]] = defaultdict(list)
    out = []
    for budget in sorted(set(a) & set(b)):
        shared = sorted(set(a[budget]) & set(b[budget]))
        diffs = [a[budget][p] - b[budget][p] for p in shared]
        for p, d in zip(shared, diffs, strict=True):
            pooled[p].append(d)
        out.append(_difference(budget, diffs, boot))
    out.append(_difference(None, [statistics.fmean(v) for v in pooled.values()], boot))
    return out


def _difference(budget: int | None, diffs: Sequence[float], boot: Bootstrap) -> dict[str, Any]:
    mean, low, high = boot.ci([[d] for d in diffs])
    return {"budget_tokens": budget, "problems": len(diffs), "difference": mean, "ci_low": low, "ci_high": high}


def headline_accuracy(rows: Sequence[Row], boot: Bootstrap) -> dict[str, Any]:
    """The arm's accuracy pooled over budgets (per problem first), with its interval over problems."""
    pooled: dict[str, list[float]] = defaultdict(list)
    for by_problem in per_problem(rows, correct).values():
        for problem, value in by_problem.items():
            pooled[problem].append(value)
    mean, low, high = boot.ci([[statistics.fmean(v)] for v in pooled.values()])
    return {"problems": len(pooled), "accuracy": mean, "ci_low": low, "ci_high": high}


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Evidence:
    """What a claim's decision rule sees: every arm's rows and summary, the budget contract, the bootstrap."""

    rows: Mapping[str, Sequence[Row]]
    summaries: Mapping[str, Sequence[Mapping[str, Any]]]
    spec: BudgetSpec
    boot: Bootstrap


def _length_follows(claim: ClaimConfig, ev: Evidence) -> tuple[bool, str]:
    rows = ev.summaries[claim.arm]
    rho = spearman([float(r["budget_tokens"]) for r in rows], [float(r["mean_reasoning_tokens"]) for r in rows])
    deviations = [float(r["mean_relative_deviation"]) for r in rows]
    deviation = statistics.fmean(deviations) if deviations else float("nan")
    held = rho >= SPEARMAN_MIN and deviation <= ev.spec.tolerance  # NaN compares false: not held
    order = f"Spearman(budget, mean tokens) = {rho:.2f} (need ≥ {SPEARMAN_MIN})"
    return held, f"{order}; mean relative deviation = {deviation:.3f} (need ≤ {ev.spec.tolerance})"


def _pooled(claim: ClaimConfig, ev: Evidence, measure: Measure, first: str, second: str) -> dict[str, Any]:
    return paired_difference(ev.rows[first], ev.rows[second], measure, ev.boot)[-1]


def _beats(claim: ClaimConfig, ev: Evidence) -> tuple[bool, str]:
    assert claim.other is not None  # validated
    d = _pooled(claim, ev, correct, claim.arm, claim.other)
    return d["ci_low"] > 0, f"paired accuracy {claim.arm} − {claim.other}: {_pt(d)} over {d['problems']} problems"


def _not_worse(claim: ClaimConfig, ev: Evidence) -> tuple[bool, str]:
    # "Within the interval of" / "not worse than": the paired difference's interval does not lie below 0.
    assert claim.other is not None  # validated
    d = _pooled(claim, ev, correct, claim.arm, claim.other)
    return d["ci_high"] >= 0, f"paired accuracy {claim.arm} − {claim.other}: {_pt(d)} over {d['problems']} problems"


def _fewer_short_wrong(claim: ClaimConfig, ev: Evidence) -> tuple[bool, str]:
    assert claim.other is not None  # validated
    d = _pooled(claim, ev, short_wrong(ev.spec), claim.other, claim.arm)
    text = f"paired short-wrong share {claim.other} − {claim.arm}: {_pt(d)} over {d['problems']} problems"
    return d["ci_low"] > 0, text


def _pt(d: Mapping[str, Any]) -> str:
    return f"{100 * d['difference']:+.1f} pt [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"


CLAIM_RULES: dict[ClaimKind, Callable[[ClaimConfig, Evidence], tuple[bool, str]]] = {
    ClaimKind.LENGTH_FOLLOWS_BUDGET: _length_follows,
    ClaimKind.BEATS: _beats,
    ClaimKind.FEWER_SHORT_WRONG: _fewer_short_wrong,
    ClaimKind.NOT_WORSE: _not_worse,
}
"""Each claim's decision: (held, the numbers that decide it)."""

_STATEMENTS: dict[ClaimKind, str] = {
    ClaimKind.LENGTH_FOLLOWS_BUDGET: "{arm}: reasoning length follows the budget",
    ClaimKind.BEATS: "{arm} is more accurate than {other} at the same budgets",
    ClaimKind.FEWER_SHORT_WRONG: "{arm} gives fewer short wrong answers than {other}",
    ClaimKind.NOT_WORSE: "{arm} is not less accurate than {other} (paired interval reaches 0)",
}


def decide(claims: Sequence[ClaimConfig], ev: Evidence) -> list[dict[str, Any]]:
    """Every claim with its statement, decision and deciding numbers."""
    out = []
    for claim in claims:
        held, numbers = CLAIM_RULES[claim.kind](claim, ev)
        statement = _STATEMENTS[claim.kind].format(arm=claim.arm, other=claim.other)
        out.append({"claim": statement, "kind": claim.kind.value, "held": held, "numbers": numbers})
    return out


def compare_arms(
    rows: Mapping[str, Sequence[Row]],
    reference: str,
    claims: Sequence[ClaimConfig],
    spec: BudgetSpec,
    boot: Bootstrap,
) -> dict[str, Any]:
    """The whole comparison (JSON-able): per-arm summaries and headline accuracy, paired differences against
    ``reference`` (accuracy and short-wrong share) and the decided claims. ``rows``: each arm's own series rows
    (``series_rows``)."""
    summaries = {arm: arm_summary(r, spec, boot) for arm, r in rows.items()}
    headline = {arm: headline_accuracy(r, boot) for arm, r in rows.items()}
    paired = {
        arm: {
            "accuracy": paired_difference(r, rows[reference], correct, boot),
            "short_wrong": paired_difference(r, rows[reference], short_wrong(spec), boot),
        }
        for arm, r in rows.items()
        if arm != reference
    }
    claims_out = decide(claims, Evidence(rows, summaries, spec, boot))
    comparison: dict[str, Any] = json_safe(
        {"reference": reference, "arms": summaries, "headline": headline, "paired": paired, "claims": claims_out}
    )
    return comparison


def json_safe(value: Any) -> Any:
    """``value`` with every NaN (an undefined figure, e.g. no shared problems) as None: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
