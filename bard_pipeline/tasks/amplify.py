"""BRIDGE's `amplify` stage: the refined teacher assistant writes traces for every other training problem.

The TA sees the teacher's prompt, its samples are graded and gold-selected exactly like the teacher's
(``bard_core.sampling``), and each row says who wrote it (`author`). The artifact holds the teacher's traces
and the TA's together, in the `traces` contract, so `compress` and `materialize` take it unchanged: BRIDGE
supplies the data, BARD the budget control.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core import schemas
from bard_core.engine import SamplingParams
from bard_pipeline.infra.jobs import EngineWorker, SampleJobSpec
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.engine_stage import EngineSetup, run_engine_stage
from bard_pipeline.tasks.inputs import read_input
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.sample import trace_stats
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger, stage_config

VERSION = 1
AUTHOR = "assistant"


@task(name="amplify", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def amplify(
    ctx: StageContext, problems: ArtifactRef, traces: ArtifactRef, tokenizer: ArtifactRef, assistant: ModelLocation
) -> ArtifactRef:
    b, sample = ctx.cfg.bridge, ctx.cfg.sample
    setup = EngineSetup(b.engine, b.resources, tokenizer, assistant)
    prompts = (sample.prompt_template,) + ((sample.system_prompt,) if sample.system_prompt else ())
    config = stage_config(b.amplify, engine=setup.identity(), splits=list(sample.splits))
    inputs = {"problems": problems, "traces": traces, "tokenizer": tokenizer}
    spec = StageSpec("amplify", VERSION, config, prompts, inputs)

    def build(writer: ArtifactWriter) -> StageResult:
        teacher = read_input(ctx, traces, "traces", schemas.TRACES, "amplify")
        table = read_input(ctx, problems, "problems", schemas.PROBLEMS, "amplify")
        table = table.filter(pc.is_in(table.column("split"), pa.array(list(sample.splits))))
        asked = pc.unique(teacher.column("problem_id"))
        rest = table.filter(pc.invert(pc.is_in(table.column("problem_id"), asked))).sort_by("problem_id")
        a = b.amplify
        params = SamplingParams(a.n_samples, a.sampling.temperature, a.sampling.top_p, a.sampling.max_new_tokens,
                                a.sampling.seed)  # fmt: skip

        def make_job(worker: EngineWorker) -> SampleJobSpec:
            return SampleJobSpec(worker, sample.prompt_template, sample.system_prompt, params, a.selection, AUTHOR)

        usage, backend = run_engine_stage(
            ctx, writer, "assistant_traces", rest, b.shard_rows, setup, make_job, schemas.TRACES
        )
        written = writer.read_table("assistant_traces", schemas.TRACES)
        writer.write_table("traces", pa.concat_tables([teacher, written]))
        stats = {
            "teacher": trace_stats(teacher, len(asked)),
            "assistant": trace_stats(written, rest.num_rows),
            "rows_by_author": dict(Counter(pa.concat_tables([teacher, written]).column("author").to_pylist())),
            "engine_backend": backend,
        }
        solved = stats["assistant"]["problems_with_gold"]  # type: ignore[index]
        if rest.num_rows and not solved:
            # An honest empty result: nothing of the assistant's passes the judge, so only the teacher's
            # traces go on; the reason is in the stats and the log, and the stage does not fail.
            stats["empty_reason"] = (
                f"the assistant solved none of the {rest.num_rows} remaining problems "
                f"(accuracy {stats['assistant']['accuracy']}); only the teacher's traces go on"  # type: ignore[index]
            )
            logger().warning("amplify: %s", stats["empty_reason"])
        return StageResult(stats=stats, usage=usage)

    return execute(ctx, spec, build)
