"""The toy teacher assistant's pretraining corpus: train split only, none of the target task, in the teacher's
format; and its model spec, which leaves the toy_random spec's serialisation as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from bard_core.budget import THINK_CLOSE, THINK_OPEN, parse_think, render_assistant
from bard_core.config import ModelSpec, ToyRandomModelSpec
from bard_core.config.models import BUILT_MODEL_KINDS, RunningSumCorpus, ToyPretrainedModelSpec
from bard_core.grading import GraderKind, grade
from bard_core.prompting import load_prompt
from bard_core.recipes import load_config
from bard_core.sampling import TeacherPrompt
from bard_core.toy import lab
from bard_core.toy.pretrain_corpus import check_disjoint_from, corpus_problems, pretrain_corpus
from bard_core.toy.world import ToyFamily

REPO = Path(__file__).resolve().parents[2]


def test_corpus_is_train_split_teacher_conversations_of_the_easier_domain() -> None:
    spec = ToyPretrainedModelSpec()
    corpus = pretrain_corpus(400, spec.corpus_seed, spec.corpus.difficulty())
    assert len(corpus) == len({c.terms for c in corpus}) == 400  # distinct problems
    # A draw of this size from the whole space would hold ~40 held-out problems: the corpus holds none.
    assert all(lab.split_of(c.terms) == "train" for c in corpus)
    assert {len(c.terms) for c in corpus} == {2, 3}
    teacher = TeacherPrompt(load_prompt("teacher_user.txt"))
    for c in corpus:
        problem = "What is " + " + ".join(map(str, c.terms)) + "?"
        assert [{"role": "user", "content": c.user}] == teacher.messages(problem)  # what the teacher is sent
        assert c.assistant.startswith(f"{THINK_OPEN}\n") and f"\n{THINK_CLOSE}\n\n" in c.assistant
        parsed = parse_think(c.assistant)
        assert parsed.reasoning is not None and c.assistant == render_assistant(parsed.reasoning, parsed.final)
        assert grade(parsed.final, c.answer, GraderKind.INTEGER).correct and c.answer == str(sum(c.terms))
    assert corpus[0].record() == {
        "prompt": [{"role": "user", "content": corpus[0].user}],
        "completion": [{"role": "assistant", "content": corpus[0].assistant}],
    }
    assert pretrain_corpus(400, spec.corpus_seed, spec.corpus.difficulty()) == corpus  # seeded


def test_corpus_holds_no_problem_of_the_toy_recipes_task() -> None:
    cfg = load_config(str(REPO / "configs/toy.yaml"), [])
    corpus = RunningSumCorpus().difficulty()
    targets = [f.difficulty for s in cfg.ingest.sources for f in s.families if f.family is ToyFamily.RUNNING_SUM]
    assert targets  # the recipe's task is running_sum with 4-5 terms
    for target in targets:
        check_disjoint_from(corpus, target)
    with pytest.raises(ValueError, match=r"set the model's corpus\.max_terms below 4"):
        check_disjoint_from({"min_terms": 2, "max_terms": 4}, targets[0])
    texts = {p["problem"] for p in corpus_problems(2000, ToyPretrainedModelSpec().corpus_seed, corpus)}
    target_texts = {p["problem"] for p in corpus_problems(2000, 0, targets[0])}
    assert texts and target_texts and not texts & target_texts


def test_toy_pretrained_spec_parses_and_leaves_toy_random_serialisation_alone() -> None:
    spec = TypeAdapter(ModelSpec).validate_python(
        {"kind": "toy_pretrained", "hidden_size": 64, "corpus": {"max_terms": 2}, "steps": 10}
    )
    assert isinstance(spec, ToyPretrainedModelSpec) and spec.corpus.difficulty()["max_terms"] == 2
    assert spec.kind in BUILT_MODEL_KINDS and spec.corpus_problems == 3000 and spec.learning_rate == 2e-3
    # The fingerprint dump of toy_random as it was before the shared architecture base.
    assert ToyRandomModelSpec().fingerprint_dump() == {
        "kind": "toy_random",
        "arch": "llama",
        "hidden_size": 256,
        "num_layers": 4,
        "num_heads": 4,
        "intermediate_size": 768,
        "max_position_embeddings": 1024,
        "seed": 0,
    }
    with pytest.raises(ValidationError, match="min_terms <= max_terms"):
        RunningSumCorpus(min_terms=3, max_terms=2)
    with pytest.raises(ValidationError, match="extra"):
        ToyPretrainedModelSpec.model_validate({"corpus": {"terms": 3}})
