from __future__ import annotations

from bard_core.prompting import load_prompt
from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer


def test_toy_tokenizer_splits_digits_and_has_a_masked_chat_template(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tokenizer = train_toy_tokenizer(toy_corpus(30, 5, [16, 32], load_prompt("budget_user.txt")), 400)
    assert len(tokenizer) <= 400 + 8
    tokens = tokenizer.tokenize("<think>\n123+45=168\n</think>")
    assert tokens[0] == "<think>" and tokens[-1] == "</think>"
    assert [t for t in tokens if t.isdigit()] == list("12345168")
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na"}]
    encoded = reloaded.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    mask = encoded["assistant_masks"]
    assert 0 < sum(mask) < len(mask)  # loss can be restricted to the assistant turn
    assert reloaded.decode(encoded["input_ids"], skip_special_tokens=True).count("<think>") == 1
