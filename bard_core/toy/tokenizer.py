"""The toy student's tokenizer: a small byte-level BPE with digits split, trained on toy-world text.

Digits are split one per token because merged numbers (" 17") turn arithmetic into a lookup problem
for a tiny model (measured in shared/notes/stack-ml.md: 13 % vs 3 % a+b accuracy). The tokenizer is
saved as a transformers tokenizer folder with a ChatML-style chat template whose assistant turn is
wrapped in ``{% generation %}`` markers, so trainers can mask the loss to the assistant turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bard_core.budget import THINK_CLOSE, THINK_OPEN, render_user
from bard_core.engine import GenerationRequest, SamplingParams
from bard_core.prompting import PromptTemplate, load_prompt
from bard_core.toy.oracle import OracleEngine, OracleSettings
from bard_core.toy.world import ToyFamily, family_problems

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<|im_end|>"
# Some model families' tokenizer classes (Qwen2) add this token when it is missing, growing the vocabulary
# past the model's embedding: having it from the start keeps the two equal whatever class loads it.
ENDOFTEXT = "<|endoftext|>"
CHAT_TEMPLATE_FILE = "toy_chat_template.jinja"


def toy_corpus(problems_per_family: int, seed: int, budgets: Sequence[int], user_template: PromptTemplate) -> list[str]:
    """Problems, teacher traces and compressions of each toy family, plus the rendered prompts."""
    engine = OracleEngine(OracleSettings())
    texts: list[str] = []
    for family in ToyFamily:
        for i, problem in enumerate(family_problems(family, problems_per_family, seed, {}, "train")):
            texts.append(render_user(user_template, problem["problem"], budgets[i % len(budgets)]))
            requests = [
                GenerationRequest(
                    f"corpus-{problem['problem_id']}",
                    [],
                    SamplingParams(),
                    {"role": "teacher", "problem_meta": problem["meta"]},
                ),
                GenerationRequest(
                    f"corpus-c-{problem['problem_id']}",
                    [],
                    SamplingParams(),
                    {
                        "role": "compressor",
                        "problem_meta": problem["meta"],
                        "budget_tokens": budgets[i % len(budgets)],
                    },
                ),
            ]
            texts.extend(c.text for result in engine.generate(requests) for c in result.completions)
    return texts


def train_toy_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """Train the BPE and wrap it as a ``PreTrainedTokenizerFast`` with the toy chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Think tags are single tokens but *not* special: decoding with skip_special_tokens keeps them.
    tokenizer.add_tokens([THINK_OPEN, THINK_CLOSE])
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
    )
    fast.chat_template = load_prompt(CHAT_TEMPLATE_FILE).text
    return fast
