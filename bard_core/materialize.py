"""Materialization: valid tiers (+ gold traces) -> SFT chat records, RL prompts, split, dataset card."""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import yaml

from bard_core.budget import BudgetSpec, render_assistant, render_user
from bard_core.chat_contract import BudgetContract
from bard_core.prompting import PromptTemplate

TRAIN, VALIDATION = "train", "validation"


class BudgetLabel(str, Enum):
    TARGET = "target"  # the tier a record was compressed to
    MEASURED = "measured"  # the record's own reasoning length (hindsight relabelling)


class RLBudgets(str, Enum):
    TIERS = "tiers"  # one RL prompt per tier
    RANGE = "range"  # integers drawn uniformly between the smallest and largest tier


@dataclass(frozen=True)
class BudgetPolicy:
    """Which budgets the records state: how compressed records are labelled, which budgets no record may
    carry (so that evaluation there measures generalisation), and how RL prompt budgets are drawn."""

    label: BudgetLabel = BudgetLabel.TARGET
    heldout_tokens: frozenset[int] = frozenset()
    rl_budgets: RLBudgets = RLBudgets.TIERS
    rl_budgets_per_problem: int = 4
    seed: int = 0

    def check(self, spec: BudgetSpec) -> None:
        clash = sorted(self.heldout_tokens & set(spec.tiers_tokens))
        if clash:
            raise ValueError(
                f"materialize.heldout_budgets_tokens {clash} are also budget.tiers_tokens: a tier cannot be held "
                "out of training; choose budgets between the tiers"
            )

    def rl_budgets_for(self, problem_id: str, spec: BudgetSpec) -> list[int]:
        if self.rl_budgets is RLBudgets.TIERS:
            return list(spec.tiers_tokens)
        low, high = spec.tiers_tokens[0], spec.tiers_tokens[-1]
        options = [b for b in range(low, high + 1) if b not in self.heldout_tokens]
        rng = random.Random(int.from_bytes(hashlib.sha256(f"{self.seed}|rl|{problem_id}".encode()).digest()[:8], "big"))
        return sorted(set(rng.sample(options, min(self.rl_budgets_per_problem, len(options)))))


def assign_split(problem_id: str, val_fraction: float, seed: int) -> str:
    """Deterministic split by problem (never by row): all tiers of a problem land on the same side."""
    digest = hashlib.sha256(f"{seed}|{problem_id}".encode()).digest()
    return VALIDATION if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else TRAIN


def sft_records(
    tiers: Sequence[Mapping[str, Any]],
    gold: Sequence[Mapping[str, Any]],
    problems: Mapping[str, Mapping[str, Any]],
    template: PromptTemplate,
    include_gold: bool,
    agnostic: PromptTemplate | None = None,
    policy: BudgetPolicy = BudgetPolicy(),
) -> tuple[list[dict[str, Any]], int]:
    """(chat records under the budget contract: user turn with the budget, assistant turn with think+answer;
    records dropped because their budget is held out). With an ``agnostic`` template: the budget-agnostic
    baseline, gold traces only and no budget shown."""
    records = []
    measured = policy.label is BudgetLabel.MEASURED
    sources: list[tuple[str, Mapping[str, Any], int]] = [
        ("compressed", t, int(t["reasoning_tokens" if measured else "budget_tokens"]))
        for t in tiers
        if t["valid"] and agnostic is None
    ]
    if include_gold or agnostic is not None:
        # The uncompressed gold trace teaches the budget at its own length.
        sources += [("gold", g, int(g["reasoning_tokens"])) for g in gold]
    heldout = 0
    for kind, row, budget in sources:
        if budget in policy.heldout_tokens and agnostic is None:
            heldout += 1
            continue
        problem = problems[row["problem_id"]]
        records.append(
            {
                "problem_id": row["problem_id"],
                "budget_tokens": budget,
                "reasoning_tokens": int(row["reasoning_tokens"]),
                "kind": kind,
                "prompt": [{"role": "user", "content": _user_turn(template, agnostic, problem["problem"], budget)}],
                "completion": [{"role": "assistant", "content": render_assistant(row["reasoning"], row["final"])}],
                "mode": None,  # a numeric budget record
            }
        )
    return records, heldout


MODE_KIND = "mode"  # the SFT `kind` of an effort mode's records


def mode_records(
    tiers: Sequence[Mapping[str, Any]],
    gold: Sequence[Mapping[str, Any]],
    problems: Mapping[str, Mapping[str, Any]],
    contract: BudgetContract,
) -> list[dict[str, Any]]:
    """Per gold trace (reasoning length L) and share mode s: the effort prompt, answered by the problem's
    trace (a valid compressed tier, or the gold trace) whose length is nearest to s·L, the shorter on a tie.
    ``budget_tokens`` is the nominal target round(s·L), so fidelity to the mode can be measured. Tier modes
    need no records: their prompt is the tier's. No budget is stated, so held-out budgets do not apply."""
    shares = [m for m in contract.modes if m.share is not None]
    if not shares:
        return []
    candidates: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for t in tiers:
        if t["valid"]:
            candidates[t["problem_id"]].append(t)
    records = []
    for g in gold:
        full = int(g["reasoning_tokens"])
        options = [*candidates[g["problem_id"]], g]
        problem = problems[g["problem_id"]]["problem"]
        for mode in shares:
            target = round(float(mode.share or 0.0) * full)
            row = min(options, key=lambda r: (abs(int(r["reasoning_tokens"]) - target), int(r["reasoning_tokens"])))
            records.append(
                {
                    "problem_id": g["problem_id"],
                    "budget_tokens": target,
                    "reasoning_tokens": int(row["reasoning_tokens"]),
                    "kind": MODE_KIND,
                    "prompt": [{"role": "user", "content": contract.render(problem, effort=mode.name)}],
                    "completion": [{"role": "assistant", "content": render_assistant(row["reasoning"], row["final"])}],
                    "mode": mode.name,
                }
            )
    return records


def mode_stats(sft: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per effort mode: records, and the mean target (round(s·L)) and actual reasoning length."""
    by_mode: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in sft:
        if r["kind"] == MODE_KIND:
            by_mode[str(r["mode"])].append(r)
    return {
        name: {
            "records": len(rows),
            "mean_target_tokens": round(statistics.fmean(int(r["budget_tokens"]) for r in rows), 1),
            "mean_reasoning_tokens": round(statistics.fmean(int(r["reasoning_tokens"]) for r in rows), 1),
        }
        for name, rows in by_mode.items()
    }


def _user_turn(template: PromptTemplate, agnostic: PromptTemplate | None, problem: str, budget: int) -> str:
    return agnostic.render(problem=problem).strip() if agnostic is not None else render_user(template, problem, budget)


def rl_records(
    problem_ids: Sequence[str],
    problems: Mapping[str, Mapping[str, Any]],
    spec: BudgetSpec,
    template: PromptTemplate,
    policy: BudgetPolicy = BudgetPolicy(),
) -> list[dict[str, Any]]:
    """RL prompts per problem at the policy's budgets (each tier, or drawn from the range); the RL stage
    draws budgets from these."""
    records = []
    for problem_id in problem_ids:
        problem = problems[problem_id]
        for budget in policy.rl_budgets_for(problem_id, spec):
            records.append(
                {
                    "problem_id": problem_id,
                    "problem": problem["problem"],
                    "answer": problem["answer"],
                    "budget_tokens": budget,
                    "prompt": [{"role": "user", "content": render_user(template, problem["problem"], budget)}],
                    "grader": problem["grader"],
                    "meta": problem["meta"],
                }
            )
    return records


def length_summary(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 1),
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def dataset_stats(
    sft: Sequence[Mapping[str, Any]],
    rl: Sequence[Mapping[str, Any]],
    tiers: Sequence[Mapping[str, Any]],
    spec: BudgetSpec,
    heldout_dropped: int = 0,
) -> dict[str, Any]:
    """Counts per tier and split, length summaries, rejection reasons: the card's numbers."""
    per_tier: dict[str, dict[str, Any]] = {}
    for budget in spec.tiers_tokens:
        rows = [t for t in tiers if int(t["budget_tokens"]) == budget]
        valid = [int(t["reasoning_tokens"]) for t in rows if t["valid"]]
        per_tier[str(budget)] = {
            "attempted": len(rows),
            "valid": len(valid),
            "rejected": len(rows) - len(valid),
            "reasoning_tokens": length_summary(valid),
            "within_tolerance": sum(spec.within(v, budget) for v in valid),
        }
    reasons = Counter(str(t["reject_reason"]).split(":")[0] for t in tiers if not t["valid"])
    if heldout_dropped:
        reasons["heldout_budget"] = heldout_dropped
    splits: dict[str, Counter[str]] = defaultdict(Counter)
    for r in sft:
        splits[r["split"]][r["kind"]] += 1
    gold_lengths = [int(r["reasoning_tokens"]) for r in sft if r["kind"] == "gold"]
    modes = mode_stats(sft)
    return {
        "problems": len({r["problem_id"] for r in sft}),
        "sft_records": {split: dict(kinds) for split, kinds in sorted(splits.items())},
        "rl_prompts": dict(sorted(Counter(r["split"] for r in rl).items())),
        "tiers": per_tier,
        "gold_reasoning_tokens": length_summary(gold_lengths),
        "reject_reasons": dict(sorted(reasons.items())),
        **({"modes": modes} if modes else {}),  # absent without effort modes: the card's stats as before
    }


def _size_category(rows: int) -> str:
    """The Hub's ``size_categories`` value for a row count (n<1K, 1K<n<10K, ...)."""
    bounds = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"))
    return next((label for bound, label in bounds if rows < bound), "1M<n<10M" if rows < 10**7 else "n>10M")


def card_front_matter(files: Sequence[str], rows: int | None = None, license: str = "apache-2.0") -> str:
    """The card's YAML header in the Hub's dataset-card convention: one config per table family
    (``sft_train.parquet`` -> config ``sft``, split ``train``), the first one the default. SFT records and RL
    prompts have different columns, and ``datasets`` cannot hold two schemas in one config, so each family
    is its own config: ``load_dataset(folder)`` gives the SFT splits, ``load_dataset(folder, "rl")`` the RL ones.
    ``rows`` (all records) sets ``size_categories``; ``license`` defaults to the project's (LICENSE)."""
    configs: dict[str, list[dict[str, str]]] = {}
    for name in files:
        match = re.fullmatch(r"([a-z0-9]+)_(\w+)\.parquet", name)
        if match:
            configs.setdefault(match.group(1), []).append({"split": match.group(2), "path": name})
    header = {
        "configs": [
            {"config_name": config, **({"default": True} if i == 0 else {}), "data_files": splits}
            for i, (config, splits) in enumerate(configs.items())
        ],
        "license": license,
        "language": ["en"],  # every bundled and toy problem, and the prompt files, are English
        "task_categories": ["text-generation"],
        "tags": ["reasoning", "distillation", "budget-aware", "bard"],
        **({"size_categories": [_size_category(rows)]} if rows is not None else {}),
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def _card_rows(stats: Mapping[str, Any]) -> int:
    """All records of the dataset: SFT records of every split and kind, and RL prompts."""
    sft = sum(int(n) for kinds in stats.get("sft_records", {}).values() for n in kinds.values())
    return sft + sum(int(n) for n in stats.get("rl_prompts", {}).values())


def dataset_card(stats: Mapping[str, Any], spec: BudgetSpec, files: Sequence[str], plot: str | None) -> str:
    lines = [
        card_front_matter(files, _card_rows(stats)) + "# BARD dataset card",
        "",
        f"- problems with at least one SFT record: **{stats['problems']}**",
        f"- budget tiers (student reasoning tokens): {list(spec.tiers_tokens)}; fidelity `{spec.shape.value}`, "
        f"tolerance {spec.tolerance:.0%}",
        f"- SFT records: {json.dumps(stats['sft_records'])}",
        f"- RL prompts: {json.dumps(stats['rl_prompts'])}",
        f"- gold traces (uncompressed) reasoning tokens: {json.dumps(stats['gold_reasoning_tokens'])}",
        "",
        "## Compression per tier",
        "",
        "| tier | attempted | valid | rejected | mean tokens | median | min | max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tier, row in stats["tiers"].items():
        s = row["reasoning_tokens"]
        cells = [s.get(k, "–") for k in ("mean", "median", "min", "max")]
        lines.append(
            f"| {tier} | {row['attempted']} | {row['valid']} | {row['rejected']} | "
            + " | ".join(map(str, cells))
            + " |"
        )
    if stats.get("modes"):
        lines += ["", "## Effort modes", "", "| mode | records | mean target tokens | mean reasoning tokens |"]
        lines += ["|---|---:|---:|---:|"]
        lines += [
            f"| {name} | {m['records']} | {m['mean_target_tokens']} | {m['mean_reasoning_tokens']} |"
            for name, m in stats["modes"].items()
        ]
    lines += ["", "## Rejection reasons", "", "| reason | count |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in stats["reject_reasons"].items()] or ["| (none) | 0 |"]
    if plot:
        lines += ["", "## Reasoning length per tier", "", f"![reasoning length histograms]({plot})"]
    lines += ["", "## Files", ""] + [f"- `{name}`" for name in files]
    lines += [
        "",
        "Load an exported folder (`bard artifacts export`) or its Hub repo with `datasets.load_dataset(FOLDER)` "
        '(the SFT records: splits train and validation) and `datasets.load_dataset(FOLDER, "rl")` (the RL prompts).',
        "",
    ]
    return "\n".join(lines)


def build_dataset(
    tiers: Sequence[Mapping[str, Any]],
    gold: Sequence[Mapping[str, Any]],
    problems: Mapping[str, Mapping[str, Any]],
    template: PromptTemplate,
    spec: BudgetSpec,
    include_gold: bool,
    val_fraction: float,
    split_seed: int,
    agnostic: PromptTemplate | None = None,
    policy: BudgetPolicy = BudgetPolicy(),
    contract: BudgetContract | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """(SFT records by split, RL prompts by split, card stats). With a ``contract`` that has share modes
    (and a budget-conditioned dataset), the mode records too (``mode_records``)."""
    policy.check(spec)
    sft, heldout = sft_records(tiers, gold, problems, template, include_gold, agnostic, policy)
    if contract is not None and agnostic is None:
        sft += mode_records(tiers, gold, problems, contract)
    for record in sft:
        record["split"] = assign_split(record["problem_id"], val_fraction, split_seed)
    trained = sorted({r["problem_id"] for r in sft})
    split_of = {pid: assign_split(pid, val_fraction, split_seed) for pid in trained}
    # Validation prompts stay at the tiers: they are the probe's grid, whatever RL draws for training.
    rl = rl_records([p for p in trained if split_of[p] == TRAIN], problems, spec, template, policy)
    rl += rl_records([p for p in trained if split_of[p] == VALIDATION], problems, spec, template)
    for record in rl:
        record["split"] = split_of[record["problem_id"]]
    stats = dataset_stats(sft, rl, tiers, spec, heldout)
    by_split = {s: [r for r in sft if r["split"] == s] for s in (TRAIN, VALIDATION)}
    rl_by_split = {s: [r for r in rl if r["split"] == s] for s in (TRAIN, VALIDATION)}
    return by_split, rl_by_split, stats
