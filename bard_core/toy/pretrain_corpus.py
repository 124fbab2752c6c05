"""The pretraining corpus of the toy teacher assistant: general arithmetic of the toy world, in the teacher's
own format, with none of the target task in it.

In the real world the teacher assistant is a pretrained mid-sized model with general ability. The toy world
cannot download one, so it builds one: a random-init model trained on this corpus. The corpus is

- lab problems (``running_sum``) of an *easier* difficulty than the target task (2-3 terms against 4-5), so
  the prior is general skill (column addition, the think/boxed format), not the task itself;
- drawn from the **train** split only: the held-out split is a content-hash share of the problem space
  (``lab.split_of``), and a corpus that held test problems would leak them into every model built from it;
- solved by the oracle *teacher* with ``error_rate`` 0 (every trace states the right total), and rendered as
  the conversations the pipeline's teacher has: the user turn is the teacher prompt file, the assistant turn
  goes through the budget contract's one rendering (``budget.render_assistant``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bard_core.budget import parse_think, render_assistant
from bard_core.engine import SamplingParams
from bard_core.grading import GraderKind, grade
from bard_core.prompting import load_prompt
from bard_core.sampling import TEACHER_FIELDS, TeacherPrompt, teacher_requests
from bard_core.toy import lab
from bard_core.toy.oracle import OracleEngine, OracleSettings

# Bump when the corpus this module writes changes, so models pretrained on the old one are not reused.
CORPUS_VERSION = 1
TEACHER_TEMPLATE = "teacher_user.txt"  # the sample stage's default prompt_template: what the teacher sees
# The teacher of the toy recipe samples at 0.7; error_rate 0 keeps the corpus correct.
CORPUS_TEMPERATURE = 0.7
CORPUS_ORACLE = OracleSettings(model="toy-oracle-corpus", error_rate=0.0)


@dataclass(frozen=True)
class CorpusConversation:
    """One corpus problem and the teacher's conversation about it."""

    problem_id: str
    terms: tuple[int, ...]
    answer: str
    user: str
    assistant: str

    def record(self) -> dict[str, list[dict[str, str]]]:
        """The row SFT trains on: TRL's conversational prompt-completion format (loss on the completion)."""
        return {
            "prompt": [{"role": "user", "content": self.user}],
            "completion": [{"role": "assistant", "content": self.assistant}],
        }


def corpus_problems(count: int, seed: int, difficulty: Mapping[str, int]) -> list[dict[str, Any]]:
    """``count`` distinct train-split running_sum problems (problem rows, ``meta`` a dict)."""
    return list(lab.running_sum_problems(count, seed, "train", difficulty))


def check_disjoint_from(corpus: Mapping[str, int], target: Mapping[str, int]) -> None:
    """Fail when a corpus of difficulty ``corpus`` can hold a problem of the ``target`` difficulty (a
    running_sum difficulty, e.g. an ingest source's): their term counts must not overlap."""
    knobs = {**lab.RUNNING_SUM_DEFAULTS, **corpus}
    goal = {**lab.RUNNING_SUM_DEFAULTS, **target}
    if knobs["max_terms"] >= goal["min_terms"] and goal["max_terms"] >= knobs["min_terms"]:
        raise ValueError(
            f"pretraining corpus terms {knobs['min_terms']}-{knobs['max_terms']} overlap the target's "
            f"{goal['min_terms']}-{goal['max_terms']}: set the model's corpus.max_terms below {goal['min_terms']}"
        )


def teacher_conversations(problems: Sequence[Mapping[str, Any]], seed: int) -> list[CorpusConversation]:
    """The oracle teacher's answer to each problem, as the pipeline's teacher prompt and assistant turn."""
    prompt = TeacherPrompt(load_prompt(TEACHER_TEMPLATE).require(TEACHER_FIELDS))
    rows = [{**p, "meta": json.dumps(p["meta"])} for p in problems]  # problem rows carry meta as JSON
    params = SamplingParams(temperature=CORPUS_TEMPERATURE, seed=seed)
    requests = teacher_requests(rows, prompt, params)
    results = OracleEngine(CORPUS_ORACLE).generate(requests)
    out: list[CorpusConversation] = []
    for problem, request, result in zip(problems, requests, results, strict=True):
        (completion,) = result.completions
        parsed = parse_think(completion.text)
        # error_rate 0 and no truncation: a trace that does not close or answer right is a bug, not noise.
        if not parsed.closed or parsed.reasoning is None or completion.finish_reason != "stop":
            raise AssertionError(f"corpus trace of {problem['problem_id']} is not a closed think block")
        if not grade(parsed.final, str(problem["answer"]), GraderKind.INTEGER).correct:
            raise AssertionError(f"corpus trace of {problem['problem_id']} answers wrong: {parsed.final!r}")
        out.append(
            CorpusConversation(
                problem_id=str(problem["problem_id"]),
                terms=tuple(problem["meta"]["terms"]),
                answer=str(problem["answer"]),
                user=request.messages[-1]["content"],
                assistant=render_assistant(parsed.reasoning, parsed.final),
            )
        )
    return out


def pretrain_corpus(count: int, seed: int, difficulty: Mapping[str, int]) -> list[CorpusConversation]:
    """The corpus: ``count`` train-split problems of ``difficulty``, each with its teacher conversation."""
    problems = corpus_problems(count, seed, difficulty)
    max_terms = {**lab.RUNNING_SUM_DEFAULTS, **difficulty}["max_terms"]
    for problem in problems:
        terms = problem["meta"]["terms"]
        # The guarantees the corpus exists for, checked on what was drawn rather than trusted to the generator.
        if len(terms) > max_terms or lab.split_of(terms) != "train":
            raise AssertionError(f"corpus problem {problem['problem_id']} is outside the corpus domain: {terms}")
    return teacher_conversations(problems, seed)
