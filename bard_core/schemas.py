"""Arrow schemas of every artifact table: the data contracts between stages, in one module.

Each stage validates the tables it reads with ``conform``; a missing column or an incompatible type
fails with the artifact, the column and the stage that needed it.
"""

from __future__ import annotations

from enum import Enum

import pyarrow as pa


class EvalMode(str, Enum):
    """How an evaluation row was produced: the ``mode`` column of ``EVAL_REQUESTS``, ``GENERATIONS`` and
    ``METRICS`` (rows store the value)."""

    BUDGET = "budget"  # the budget in the prompt
    UNCONSTRAINED = "unconstrained"  # the truncation baseline's uncut output: the reference for "tokens saved"
    TRUNCATED = "truncated"  # that output cut at a budget and forced to answer
    TRUNCATION = "truncation"  # a request only: one unconstrained request per problem, cut at every budget
    EFFORT = "effort"  # a share effort mode's prompt ("Reasoning effort: low."); the mode in column `effort`


ADDED = {b"bard.added": b"null"}
"""Field metadata of a nullable column added after artifacts were written without it: ``conform`` reads
such an artifact with the column all null, so an artifact whose fingerprint did not move stays readable."""


def added(name: str, type_: pa.DataType) -> pa.Field:
    """A nullable column that older artifacts may lack (see ``ADDED``)."""
    return pa.field(name, type_, metadata=ADDED)


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CHAT = pa.list_(MESSAGE)

PROBLEMS = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("grader", pa.string(), nullable=False),  # a GraderKind value, set per source at ingest
        pa.field("meta", pa.string(), nullable=False),  # JSON object: source extras the grader may read
    ]
)

TRACES = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("teacher", pa.string(), nullable=False),  # the model that wrote the trace
        pa.field("author", pa.string(), nullable=False),  # its role: "teacher", or "assistant" (BRIDGE's TA)
        pa.field("reasoning", pa.string()),  # null when the output had no think block
        pa.field("final", pa.string(), nullable=False),
        pa.field("pred_answer", pa.string()),  # null when no answer could be parsed
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("reasoning_tokens", pa.int32(), nullable=False),  # student tokenizer
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("gen_tokens", pa.int32(), nullable=False),  # teacher tokenizer
        pa.field("is_gold", pa.bool_(), nullable=False),
        pa.field("error", pa.string()),
    ]
)

# BRIDGE's `select` stage: every training problem, its TA scores (null where not scored) and the choice.
SELECTION = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("scored", pa.bool_(), nullable=False),  # in the scored pool
        pa.field("samples", pa.int32(), nullable=False),  # TA samples scored (0: not scored)
        pa.field("answers", pa.list_(pa.string())),  # the TA's parsed answers (null entries: none parsed)
        pa.field("answer_entropy_bits", pa.float64()),
        pa.field("token_entropy", pa.float64()),  # mean per-token entropy (nats); null where the engine had none
        pa.field("pass_rate", pa.float64()),  # share of the TA samples graded correct (logged, not used)
        pa.field("difficulty", pa.float64()),
        pa.field("cluster", pa.int32()),
        pa.field("chosen", pa.bool_(), nullable=False),
        pa.field("rank", pa.int32()),  # order of choice; null when not chosen
        pa.field("error", pa.string()),  # the TA request's error, if it failed
    ]
)

# What a `select` engine actor returns per scored problem (the rest of SELECTION is decided on the driver).
SELECTION_SCORES = pa.schema(
    [
        SELECTION.field("problem_id"),
        SELECTION.field("samples"),
        SELECTION.field("answers"),
        SELECTION.field("answer_entropy_bits"),
        SELECTION.field("token_entropy"),
        SELECTION.field("pass_rate"),
        SELECTION.field("error"),
    ]
)

TIERS = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("budget_tokens", pa.int32(), nullable=False),
        pa.field("source_tokens", pa.int32(), nullable=False),  # gold trace length it was compressed from
        pa.field("reasoning", pa.string()),
        pa.field("final", pa.string()),
        pa.field("reasoning_tokens", pa.int32()),
        pa.field("answer_kept", pa.bool_(), nullable=False),
        pa.field("valid", pa.bool_(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("reject_reason", pa.string()),
        pa.field("compressor", pa.string(), nullable=False),
    ]
)

SFT = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("budget_tokens", pa.int32(), nullable=False),
        pa.field("reasoning_tokens", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # "compressed", "gold", "mode" (or "instruction")
        pa.field("prompt", CHAT, nullable=False),  # TRL conversational prompt-completion format
        pa.field("completion", CHAT, nullable=False),
        added("mode", pa.string()),  # a share effort mode's name (kind "mode"; budget_tokens: its target)
    ]
)

RL = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("budget_tokens", pa.int32(), nullable=False),
        pa.field("prompt", CHAT, nullable=False),
        pa.field("grader", pa.string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
    ]
)

# The driver -> compressor-actor boundary of `compress`: one row per (gold trace, tier), read back into
# `bard_core.compression.CompressionJob` by the job (meta as a JSON string).
COMPRESS_JOBS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("grader", pa.string()),
        ("meta", pa.string()),
        ("reasoning", pa.string()),
        ("final", pa.string()),
        ("source_tokens", pa.int32()),
        ("budget_tokens", pa.int32()),
    ]
)

EVAL_REQUESTS = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),  # label: base, sft, rl, or an extra checkpoint
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),  # EvalMode: budget or truncation
        pa.field("budget_tokens", pa.int32(), nullable=False),  # budget in the prompt (0: none)
        pa.field("prompt", CHAT, nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("grader", pa.string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
        added("effort", pa.string()),  # mode effort: the share mode's name (its prompt names it)
    ]
)

GENERATIONS = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),  # EvalMode: budget, unconstrained or truncated
        pa.field("budget_tokens", pa.int32(), nullable=False),  # the budget scored against
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # the assistant turn (prefix included when forced)
        pa.field("reasoning_tokens", pa.int32(), nullable=False),  # student tokenizer
        pa.field("completion_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("closed", pa.bool_(), nullable=False),
        pa.field("unparsed", pa.bool_(), nullable=False),
        pa.field("pred_answer", pa.string()),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("error", pa.string()),
        added("effort", pa.string()),  # mode effort: the share mode's name
        added("answer_tokens", pa.int32()),  # student tokens after </think> (0: unclosed)
        added("leaked", pa.bool_()),  # closed, and answer_tokens > budget.leak_answer_tokens
    ]
)

# `evaluate`'s summary: one row per (model, benchmark, mode, budget), with bootstrap intervals.
METRICS = pa.schema(
    [
        ("model", pa.string()),
        ("benchmark", pa.string()),
        ("mode", pa.string()),
        ("budget_tokens", pa.int32()),
        *((name, pa.int64()) for name in ("problems", "generations", "errors", "unparsed")),
        *(
            (name, pa.float64())
            for name in (
                "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_reasoning_tokens", "median_reasoning_tokens",
                "mean_relative_deviation", "within_tolerance", "over_budget", "unclosed", "tokens_saved",
            )
        ),
        added("effort", pa.string()),  # mode effort: the share mode's name
        added("mean_answer_tokens", pa.float64()),  # student tokens after </think>, unclosed outputs as 0
        added("leak_rate", pa.float64()),  # share of outputs whose answer leaked (judge.Verdict.leaked)
    ]
)  # fmt: skip

# `evaluate`'s effort-mode table (table `modes`, when `budget.modes` are set): per (model, benchmark, mode) the
# mean reasoning length, its reduction against mode `high`, accuracy and the paired accuracy change against
# `high` (bootstrap over the problems both have). A tier mode's figures are its tier's budget rows.
MODES = pa.schema(
    [
        ("model", pa.string()),
        ("benchmark", pa.string()),
        ("effort", pa.string()),  # the mode's name
        ("tier_tokens", pa.int32()),  # a tier mode's tier (null: a share mode)
        ("share", pa.float64()),  # a share mode's share of the full-length trace (null: a tier mode)
        *((name, pa.int64()) for name in ("problems", "generations", "paired_problems")),
        *(
            (name, pa.float64())
            for name in (
                "mean_reasoning_tokens", "token_reduction", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                "accuracy_change", "accuracy_change_ci_low", "accuracy_change_ci_high",
            )
        ),
    ]
)  # fmt: skip

# The budget-following probe of `sft` and `rl`: one greedy generation per (model, problem, tier).
PROBE = pa.schema(
    [
        ("model", pa.string()),
        ("problem_id", pa.string()),
        ("budget_tokens", pa.int32()),
        ("reasoning_tokens", pa.int32()),
        ("correct", pa.bool_()),
        ("parsed", pa.bool_()),
        ("fidelity", pa.float64()),
        ("reward", pa.float64()),
        ("text", pa.string()),
        added("answer_tokens", pa.int32()),  # student tokens after </think> (0: unclosed)
        added("leaked", pa.bool_()),  # closed, and answer_tokens > budget.leak_answer_tokens
    ]
)

# What the Ray Train workers of `sft` and `rl` train on, decided once by the driver
# (`bard_core.training_data`) and written into the artifact it is building before training: the SFT records
# of each split within `sft.max_length_tokens` (tables `sft_kept_train`, `sft_kept_validation`) and the RL
# prompts drawn and kept within `rl.max_prompt_tokens` (table `rl_prompts`). Rows keep their dataset contract.
SFT_KEPT = SFT
RL_PROMPTS = RL

REJECTIONS = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64()),  # 1-based line/row in the source, when there is one
        pa.field("problem_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
    ]
)


class SchemaMismatchError(ValueError):
    """A table does not match the contract of the artifact it came from."""


def conform(table: pa.Table, schema: pa.Schema, artifact: str, stage: str) -> pa.Table:
    """Select and cast ``table`` to ``schema``; say which column is missing or mistyped, where."""
    for field in schema:
        if field.name not in table.column_names and field.metadata == ADDED:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaMismatchError(
            f"stage {stage!r} reads {artifact} but column(s) {missing} are missing "
            f"(present: {table.column_names}). The artifact was written by an incompatible version or a "
            "different stage; re-create it, or point the stage at the right input."
        )
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatchError(
                    f"stage {stage!r} reads {artifact}: column {field.name!r} has type {column.type}, "
                    f"expected {field.type} ({exc})"
                ) from exc
        if not field.nullable and column.null_count:
            raise SchemaMismatchError(
                f"stage {stage!r} reads {artifact}: column {field.name!r} has {column.null_count} null(s) "
                "but the contract forbids nulls"
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
