"""What a training stage trains on: the RL prompts drawn from a dataset's budget variants, the records
that fit under a length limit, and the student curriculum's instruction records and phase order.

The driver decides both once, before training, and writes the result into the stage's artifact
(``schemas.SFT_KEPT``, ``schemas.RL_PROMPTS``); the Ray Train workers only read those rows, so what is
trained on and what the stats count cannot disagree.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from bard_core.budget import render_assistant
from bard_core.config import RLStageConfig
from bard_core.prompting import PromptTemplate

INSTRUCTION_KIND = "instruction"  # the SFT `kind` of the curriculum's instruction-alignment records
# The answer part of an instruction record: the sentence the training traces end with (the teacher is asked
# for a \boxed{} answer, the toy teacher writes exactly this), so both phases teach one answer format.
INSTRUCTION_ANSWER = "The answer is \\boxed{{{answer}}}."


def split_overlength(
    records: Sequence[Mapping[str, Any]], lengths: Sequence[int], max_tokens: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept records in their order, one note per record over ``max_tokens``). Over-length records are
    dropped and counted, never truncated: a cut chat would teach a reasoning that stops mid-way."""
    kept = [dict(r) for r, n in zip(records, lengths, strict=True) if n <= max_tokens]
    dropped = [
        {"problem_id": r["problem_id"], "budget_tokens": r["budget_tokens"], "tokens": n}
        for r, n in zip(records, lengths, strict=True)
        if n > max_tokens
    ]
    return kept, dropped


def _problem_rng(seed: int, problem_id: str) -> random.Random:
    # Seeded per problem, so a problem's draw does not depend on which other problems the dataset holds.
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}|{problem_id}".encode()).digest()[:8], "big"))


def draw_rl_prompts(records: Sequence[Mapping[str, Any]], section: RLStageConfig) -> list[dict[str, Any]]:
    """Per problem, ``budgets_per_problem`` budgets drawn from the tier weights (without weights: uniformly
    from the budgets the dataset's prompts of that problem carry, which may lie between the tiers; seeded,
    independent of the records' order), then a seeded shuffle, cut to ``max_prompts``."""
    by_problem: dict[str, dict[int, Mapping[str, Any]]] = {}
    for record in records:
        by_problem.setdefault(record["problem_id"], {})[int(record["budget_tokens"])] = record
    prompts = []
    for problem_id in sorted(by_problem):
        rng = _problem_rng(section.seed, problem_id)
        weights = section.budget_weights or dict.fromkeys(sorted(by_problem[problem_id]), 1.0)
        options = [b for b in weights if b in by_problem[problem_id] and weights[b] > 0]
        if not options:
            continue
        for budget in rng.choices(options, weights=[weights[b] for b in options], k=section.budgets_per_problem):
            prompts.append(dict(by_problem[problem_id][budget]))
    random.Random(section.seed).shuffle(prompts)
    return prompts[: section.max_prompts] if section.max_prompts else prompts


def instruction_records(problems: Sequence[Mapping[str, Any]], template: PromptTemplate) -> list[dict[str, Any]]:
    """The curriculum's instruction-alignment records (``schemas.SFT``, kind ``instruction``): one per training
    problem (``problems`` are ``schemas.RL`` rows, repeated over budgets; the first row of a problem is used),
    sorted by problem id. The user turn is ``template`` (budget-free, field: problem); the assistant turn is
    the budget contract's own rendering with an empty think block and the reference answer."""
    by_problem: dict[str, Mapping[str, Any]] = {}
    for row in problems:
        by_problem.setdefault(str(row["problem_id"]), row)
    return [
        {
            "problem_id": problem_id,
            "budget_tokens": 0,
            "reasoning_tokens": 0,
            "kind": INSTRUCTION_KIND,
            "prompt": [{"role": "user", "content": template.render(problem=str(row["problem"]).strip()).strip()}],
            "completion": [
                {
                    "role": "assistant",
                    "content": render_assistant("", INSTRUCTION_ANSWER.format(answer=str(row["answer"]).strip())),
                }
            ],
        }
        for problem_id, row in sorted(by_problem.items())
    ]


def epoch_steps(records: int, per_device_batch: int, grad_accum: int, world: int, epochs: float) -> int:
    """Optimizer steps of ``epochs`` passes over ``records``, counted as HF Trainer counts them: batches per
    process (the last one partial, ranks padded to even) grouped by ``grad_accum``, a partial group a step."""
    batches = math.ceil(math.ceil(records / per_device_batch) / world)
    per_epoch = max(math.ceil(batches / grad_accum), 1)
    return math.ceil(epochs * per_epoch)


def curriculum_order(
    instruction: int, reasoning: int, instruction_samples: int, total_samples: int, seed: int
) -> list[int]:
    """The sample order of a curriculum run over a dataset of ``instruction`` records followed by ``reasoning``
    records: ``instruction_samples`` indices of instruction records, then reasoning records up to
    ``total_samples``. Each phase walks seeded shuffles of its records, a fresh one per pass (the reasoning
    records' epochs), so a record repeats only after all of its phase were seen. Deterministic: a resumed
    run skips the batches already trained and continues on the same order."""
    if not 0 <= instruction_samples <= total_samples:
        raise ValueError(f"instruction samples ({instruction_samples}) must be within the run ({total_samples})")

    def walk(phase: str, count: int, offset: int, needed: int) -> list[int]:
        if needed and not count:
            raise ValueError(f"the curriculum's {phase} phase needs records, and has none")
        order: list[int] = []
        passes = 0
        while len(order) < needed:
            shuffled = list(range(offset, offset + count))
            random.Random(f"{seed}|{phase}|{passes}").shuffle(shuffled)
            order += shuffled
            passes += 1
        return order[:needed]

    return walk(INSTRUCTION_KIND, instruction, 0, instruction_samples) + walk(
        "reasoning", reasoning, instruction, total_samples - instruction_samples
    )
