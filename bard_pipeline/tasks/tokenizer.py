"""The `tokenizer` stage: the student's tokenizer as an artifact; it defines the budget unit."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core.config import HFTokenizerConfig, ToyTokenizerConfig
from bard_core.prompting import load_prompt
from bard_core.toy.oracle import ORACLE_VERSION
from bard_core.toy.tokenizer import CHAT_TEMPLATE_FILE
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.tokenizers import TOKENIZER_PREFIX
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, logger

VERSION = 2


def _save_toy(cfg: ToyTokenizerConfig, out: Path, budgets: tuple[int, ...], user_template: str) -> dict[str, Any]:
    from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer

    corpus = toy_corpus(cfg.corpus_problems_per_family, cfg.seed, budgets, load_prompt(user_template))
    tokenizer = train_toy_tokenizer(corpus, cfg.vocab_size)
    tokenizer.save_pretrained(str(out))
    return {"corpus_texts": len(corpus), "vocab_size": len(tokenizer)}


def _save_hf(cfg: HFTokenizerConfig, out: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.name_or_path, revision=cfg.revision)
    if not getattr(tokenizer, "chat_template", None):
        logger().warning(
            "tokenizer %s has no chat template; SFT needs one (use the instruct model's tokenizer)", cfg.name_or_path
        )
    tokenizer.save_pretrained(str(out))
    return {"vocab_size": len(tokenizer), "has_chat_template": bool(getattr(tokenizer, "chat_template", None))}


def _local_files_hash(name_or_path: str) -> str | None:
    path = Path(name_or_path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(path.glob("*token*")) + sorted(path.glob("*.jinja")):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


@task(name="tokenizer", cache_policy=NO_CACHE)
def build_tokenizer(ctx: StageContext) -> ArtifactRef:
    cfg = ctx.cfg.student.tokenizer
    config = cfg.fingerprint_dump()
    prompts: tuple[str, ...] = ()
    if isinstance(cfg, HFTokenizerConfig):
        config["local_files_sha256"] = _local_files_hash(cfg.name_or_path)
    else:
        config["corpus_budgets"] = list(ctx.cfg.budget.tiers_tokens)
        config["oracle_version"] = ORACLE_VERSION
        prompts = (ctx.cfg.budget.user_template, CHAT_TEMPLATE_FILE)
    spec = StageSpec("tokenizer", VERSION, config, prompts=prompts)

    def build(writer: ArtifactWriter) -> StageResult:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            if isinstance(cfg, ToyTokenizerConfig):
                stats = _save_toy(cfg, out, ctx.cfg.budget.tiers_tokens, ctx.cfg.budget.user_template)
            else:
                stats = _save_hf(cfg, out)
            writer.write_dir(TOKENIZER_PREFIX, out)
        return StageResult(stats=stats)

    return execute(ctx, spec, build)
