"""BRIDGE's `select` stage: the teacher assistant scores the training problems; the budget's worth is chosen.

Scoring is the TA's local inference (k samples per problem on the engine actors, at no teacher cost);
embedding and the choice are cheap and run here. Stored: every training problem's scores, cluster and
whether it was chosen (`selection`), and a plot of the choice; the stats record `teacher_budget` (teacher
requests) and `chosen`.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.bridge import SelectorKind, difficulty_scores, embed, select, selection_plot, teacher_budget_count
from bard_core.config import RunConfig
from bard_core.engine import SamplingParams, worst_case_request_usd
from bard_core.prompting import load_prompt
from bard_core.sampling import TEACHER_FIELDS
from bard_pipeline.infra.jobs import EngineWorker, ScoreJobSpec
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.engine_stage import EngineSetup, engine_setup, run_engine_stage
from bard_pipeline.tasks.inputs import read_input
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, fingerprint_config, logger

VERSION = 1


def _train_problems(ctx: StageContext, problems: ArtifactRef, stage: str) -> pa.Table:
    cfg = ctx.cfg.sample
    table = read_input(ctx, problems, "problems", schemas.PROBLEMS, stage)
    table = table.filter(pc.is_in(table.column("split"), pa.array(list(cfg.splits)))).sort_by("problem_id")
    if table.num_rows == 0:
        raise ValueError(f"{stage}: no problems in splits {list(cfg.splits)}; check ingest sources' split")
    return table


def _teacher_usd_per_problem(cfg: RunConfig, problems: pa.Table) -> float | None:
    """The worst-case dollars of one teacher request (the longest prompt, max tokens for every sample)."""
    price = getattr(cfg.sample.engine, "price", None)
    if price is None:
        return None
    prompt = load_prompt(cfg.sample.prompt_template)
    longest = max(len(prompt.render(problem=p)) for p in problems.column("problem").to_pylist())
    if cfg.sample.system_prompt:
        longest += len(load_prompt(cfg.sample.system_prompt).render(problem=""))
    s = cfg.sample.sampling
    return worst_case_request_usd(price, longest, cfg.sample.n_samples, s.max_new_tokens)


def teacher_budget(cfg: RunConfig, problems: pa.Table) -> int:
    """`bridge.teacher_budget` in teacher requests (one per chosen problem)."""
    b = cfg.bridge.teacher_budget
    usd_per_problem = _teacher_usd_per_problem(cfg, problems) if b.usd is not None else None
    return teacher_budget_count(
        problems.num_rows, requests=b.requests, share=b.share, usd=b.usd, usd_per_problem=usd_per_problem
    )


def _pool(table: pa.Table, size: int | None, seed: int) -> pa.Table:
    if size is None or size >= table.num_rows:
        return table
    keep = sorted(random.Random(f"bridge-pool-{seed}").sample(range(table.num_rows), size))
    return table.take(pa.array(keep))


def select_spec(cfg: RunConfig, setup: EngineSetup | None, problems: ArtifactRef, tokenizer: ArtifactRef) -> StageSpec:
    """What decides the choice: the strategy and what it reads (scores, embeddings), the budget and what
    prices it (the teacher's prompts, sample count, token cap and price table)."""
    b, sample = cfg.bridge, cfg.sample
    config: dict[str, object] = {
        "teacher_budget": b.teacher_budget,
        "selector": b.selector.value,
        "seed": b.seed,
        "teacher": {"n_samples": sample.n_samples, "splits": list(sample.splits),
                    "max_new_tokens": sample.sampling.max_new_tokens,
                    "price": getattr(sample.engine, "price", None)},
    }  # fmt: skip
    if b.selector.needs_embeddings:
        config.update(embedding=b.embedding.value, embedding_dim=b.embedding_dim)
    if setup is not None:
        config.update(scoring=b.scoring, assistant=setup.identity())
    prompts = (sample.prompt_template,) + ((sample.system_prompt,) if sample.system_prompt else ())
    return StageSpec(
        "select", VERSION, fingerprint_config(config), prompts, {"problems": problems, "tokenizer": tokenizer}
    )


@task(name="select", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def select_problems(
    ctx: StageContext, problems: ArtifactRef, tokenizer: ArtifactRef, models: dict[str, ModelLocation]
) -> ArtifactRef:
    b = ctx.cfg.bridge
    setup = engine_setup(b.engine, b.resources, tokenizer, models) if b.selector.needs_scores else None
    spec = select_spec(ctx.cfg, setup, problems, tokenizer)
    load_prompt(ctx.cfg.sample.prompt_template).require(TEACHER_FIELDS)

    def build(writer: ArtifactWriter) -> StageResult:
        table = _train_problems(ctx, problems, "select")
        budget = teacher_budget(ctx.cfg, table)
        pool = _pool(table, b.scoring.pool, b.seed) if b.selector.needs_scores else table
        usage: dict[str, float] = {}
        scores: dict[str, dict[str, object]] = {}
        if setup is not None:
            s = b.scoring
            params = SamplingParams(s.samples, s.sampling.temperature, s.sampling.top_p, s.sampling.max_new_tokens,
                                    s.sampling.seed, token_entropy=s.token_entropy)  # fmt: skip
            sample = ctx.cfg.sample

            def make_job(worker: EngineWorker) -> ScoreJobSpec:
                return ScoreJobSpec(worker, sample.prompt_template, sample.system_prompt, params)

            usage, _ = run_engine_stage(
                ctx, writer, "scores", pool, b.shard_rows, setup, make_job, schemas.SELECTION_SCORES
            )
            scores = {r["problem_id"]: r for r in writer.read_table("scores", schemas.SELECTION_SCORES).to_pylist()}
        # Embedded once: the diversity selectors choose by it, and the plot of every choice draws it.
        embeddings = embed(pool.column("problem").to_pylist(), b.embedding, b.embedding_dim)
        rows = _choose(ctx.cfg, pool, scores, budget, embeddings)
        in_pool = {r["problem_id"]: r for r in rows}  # problems outside the scored pool are never chosen
        outside = {"scored": False, "samples": 0, "chosen": False}
        everything = [
            in_pool.get(pid, {"problem_id": pid, **outside}) for pid in table.column("problem_id").to_pylist()
        ]
        writer.write_table("selection", pa.Table.from_pylist(everything, schema=schemas.SELECTION))
        _plot(ctx.cfg, writer, embeddings, rows)
        stats = _stats(ctx.cfg, table.num_rows, pool.num_rows, budget, everything)
        logger().info(
            "select: %s chose %d of %d training problems (teacher budget %d requests)",
            b.selector.value, stats["chosen"], table.num_rows, budget,
        )  # fmt: skip
        return StageResult(stats=stats, usage=usage)

    return execute(ctx, spec, build)


def _row_of(problem_id: str, score: dict[str, object] | None, chosen: bool) -> dict[str, object]:
    base: dict[str, object] = {"problem_id": problem_id, "scored": score is not None, "samples": 0}
    if score is not None:
        base.update({k: v for k, v in score.items() if k != "problem_id"})
    return {**base, "chosen": chosen}


def _choose(
    cfg: RunConfig, pool: pa.Table, scores: dict[str, dict[str, object]], budget: int, embeddings: np.ndarray
) -> list[dict[str, object]]:
    """Score and choose within the pool; rows of ``schemas.SELECTION`` for the pool's problems."""
    b = cfg.bridge
    ids = pool.column("problem_id").to_pylist()
    difficulty: list[float] | None = None
    if b.selector.needs_scores:
        entropy = [_float(scores.get(pid, {}).get("answer_entropy_bits")) for pid in ids]
        tokens = [scores.get(pid, {}).get("token_entropy") for pid in ids]
        token_entropy = [float(t) if isinstance(t, (int, float)) else None for t in tokens]
        difficulty = difficulty_scores(entropy, token_entropy, b.scoring.samples)
    used = embeddings if b.selector.needs_embeddings else None
    choice = select(b.selector, budget, b.seed, n=len(ids), difficulty=difficulty, embeddings=used)
    rows = []
    for i, pid in enumerate(ids):
        row = _row_of(pid, scores.get(pid), choice.chosen[i])
        row.update(
            difficulty=None if difficulty is None else difficulty[i], cluster=choice.cluster[i], rank=choice.rank[i]
        )
        rows.append(row)
    return rows


def _float(value: object) -> float:
    # A problem whose TA request failed has no answers: it counts as maximally unsure of nothing (0 bits).
    return float(value) if isinstance(value, (int, float)) else 0.0


def _plot(cfg: RunConfig, writer: ArtifactWriter, embeddings: np.ndarray, rows: list[dict[str, object]]) -> None:
    b = cfg.bridge
    difficulty = [float(r["difficulty"]) for r in rows] if b.selector.needs_scores else None  # type: ignore[arg-type]
    chosen = [bool(r["chosen"]) for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        title = f"{b.selector.value}: {sum(chosen)} of {len(rows)} chosen"
        path = selection_plot(np.asarray(embeddings), difficulty, chosen, Path(tmp) / "selection.png", title)
        writer.write_bytes("plots/selection.png", path.read_bytes())


def _stats(cfg: RunConfig, problems: int, pool: int, budget: int, rows: list[dict[str, object]]) -> dict[str, object]:
    chosen = [r for r in rows if r["chosen"]]
    scored = [r for r in rows if r["scored"]]

    def mean(values: list[object]) -> float | None:
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        return round(sum(numbers) / len(numbers), 4) if numbers else None

    return {
        "selector": cfg.bridge.selector.value,
        "problems": problems,
        "pool": pool,
        "teacher_budget": budget,
        "chosen": len(chosen),
        "scored": len(scored),
        "scoring_errors": sum(r.get("error") is not None for r in scored),
        "difficulty_mean": {
            "chosen": mean([r.get("difficulty") for r in chosen]),
            "not_chosen": mean([r.get("difficulty") for r in rows if not r["chosen"] and r["scored"]]),
        },
        "assistant_pass_rate_mean": mean([r.get("pass_rate") for r in scored]),
        "selectors_need_scores": SelectorKind(cfg.bridge.selector).needs_scores,
    }
