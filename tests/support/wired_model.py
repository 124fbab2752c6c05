"""A tiny Llama wired by hand to write one fixed reply, for tests that need a real server to emit exact text.

A random-init model never closes its think block, so a reasoning parser would never split anything. This one
has one layer whose attention and MLP write nothing (``o_proj`` and ``down_proj`` are zero), so the residual
stream is the current token's embedding and the next token depends on the current token alone. Each token of
the chain ``<last prompt token>, reply..., <eos>`` gets its own basis vector as embedding, and the LM head maps
that vector to the next token of the chain with a large logit: sampling at any temperature below ~5 writes
exactly the reply, then stops. The tokens of the reply must therefore be distinct.

The chat template opens a think block in the generation prompt (as DeepSeek-R1's and Qwen3's do), and
renders an optional ``bard_note`` template kwarg as a system turn, so a test can see kwargs arrive.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from bard_core.budget import THINK_OPEN

CHAT_TEMPLATE = (
    "{%- if bard_note is defined and bard_note -%}"
    "{{- '<|im_start|>system\\n' + bard_note + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n" + THINK_OPEN + "' -}}{%- endif -%}"
)
LOGIT = 40.0  # per unit of the normed hidden state; the normed basis vector has norm sqrt(hidden_size)


def build_wired_model(tokenizer_dir: Path, reply: str, out: Path, hidden_size: int = 64) -> dict[str, Any]:
    """Save a model (and the tokenizer with ``CHAT_TEMPLATE``) that answers every prompt with ``reply``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    last_prompt_token = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    chain = [last_prompt_token, *tokenizer.encode(reply, add_special_tokens=False), tokenizer.eos_token_id]
    if len(set(chain)) != len(chain) or len(chain) > hidden_size:
        raise ValueError(f"the reply's tokens must be distinct and fewer than {hidden_size}: {chain}")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,  # the embedding and the head hold different maps
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        head.zero_()
        for k, (token, following) in enumerate(itertools.pairwise(chain)):
            embed[token, k] = 1.0
            head[following, k] = LOGIT / hidden_size**0.5
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    return {"chain": chain}
