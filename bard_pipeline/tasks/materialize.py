"""The `materialize` stage: SFT chat records + RL prompts, split by problem, Parquet, and a dataset card."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.budget import AGNOSTIC_TEMPLATE_FIELDS, USER_TEMPLATE_FIELDS
from bard_core.materialize import BudgetPolicy, build_dataset, dataset_card
from bard_core.plots import tier_length_histograms
from bard_core.prompting import load_prompt
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.inputs import problems_by_id, read_gold, read_rows
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, stage_config

VERSION = 2  # 2: RL validation prompts at the tiers; budget labels, held-out budgets, RL range draws


@task(name="materialize", cache_policy=NO_CACHE)
def materialize(ctx: StageContext, tiers: ArtifactRef, traces: ArtifactRef, problems: ArtifactRef) -> ArtifactRef:
    cfg = ctx.cfg.materialize
    budget = ctx.cfg.budget
    # Mode records exist only with share modes on a budget-conditioned dataset; only then is the effort
    # prompt an input (so a run without modes keeps its fingerprint).
    modes = cfg.budget_conditioning and any(m.share is not None for m in budget.modes.values())
    spec = StageSpec(
        "materialize",
        VERSION,
        stage_config(cfg, budget=budget),
        (budget.user_template,)
        + (() if cfg.budget_conditioning else (budget.agnostic_template,))
        + ((budget.effort_template,) if modes else ()),
        {"tiers": tiers, "traces": traces, "problems": problems},
    )
    contract = budget.contract() if modes else None
    user = load_prompt(budget.user_template).require(USER_TEMPLATE_FIELDS)
    agnostic = (
        None if cfg.budget_conditioning else load_prompt(budget.agnostic_template).require(AGNOSTIC_TEMPLATE_FIELDS)
    )

    def build(writer: ArtifactWriter) -> StageResult:
        tier_rows = read_rows(ctx, tiers, "tiers", schemas.TIERS, "materialize")
        gold = read_gold(ctx, traces, "materialize").to_pylist()
        by_id = problems_by_id(ctx, problems, "materialize")
        spec_ = budget.spec()
        sft, rl, stats = build_dataset(
            tier_rows,
            gold,
            by_id,
            user,
            spec_,
            cfg.include_gold,
            cfg.val_fraction,
            cfg.split_seed,
            agnostic,
            BudgetPolicy(
                cfg.budget_label,
                frozenset(cfg.heldout_budgets_tokens),
                cfg.rl_budgets,
                cfg.rl_budgets_per_problem,
                cfg.split_seed,
            ),
            contract,
        )
        files = []
        for split, records in sft.items():
            writer.write_table(f"sft_{split}", pa.Table.from_pylist(records, schema=schemas.SFT))
            files.append(f"sft_{split}.parquet")
        for split, records in rl.items():
            writer.write_table(f"rl_{split}", pa.Table.from_pylist(records, schema=schemas.RL))
            files.append(f"rl_{split}.parquet")
        lengths: dict[int, list[int]] = defaultdict(list)
        for row in tier_rows:
            if row["valid"]:
                lengths[int(row["budget_tokens"])].append(int(row["reasoning_tokens"]))
        with tempfile.TemporaryDirectory() as tmp:
            png = tier_length_histograms(
                lengths, [int(g["reasoning_tokens"]) for g in gold], spec_, Path(tmp) / "lengths.png"
            )
            writer.write_bytes("lengths.png", png.read_bytes())
        writer.write_json("stats.json", stats)
        # Names in the card are logical: they resolve in a folder made by `bard artifacts export`.
        writer.write_bytes("README.md", dataset_card(stats, spec_, files, "lengths.png").encode())
        return StageResult(stats=stats)

    return execute(ctx, spec, build)
