"""`bard export`: a trained student (an `sft` or `rl` artifact) as a Hugging Face model folder that plain
transformers, vLLM and `bard serve` load as it is.

The folder holds the stored weights and config, the tokenizer whose chat template carries the budget
contract the student was trained under (``thinking_budget`` / ``reasoning_effort`` render the trained user
turn), that contract as ``bard_budget.json``, a ``generation_config.json`` with the evaluation's sampling
settings, the evaluation's plots, and ``README.md``, the model card.

The contract comes from the artifacts themselves, not from today's recipe: the `budget` section the
training stage fingerprinted (RL's config holds it; SFT's comes from its dataset, the `materialize`
artifact), and the prompt files it names must still hash as they did then.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bard_core.chat_contract import CONTRACT_FILE, BudgetContract
from bard_core.config import BudgetConfig, EvaluateConfig
from bard_core.manifest import Manifest
from bard_core.model_card import DEFAULT_LICENSE, ModelCardFacts, model_card
from bard_core.prompting import load_prompt
from bard_pipeline.infra.models import MODEL_PREFIX
from bard_pipeline.infra.store import ArtifactNotFoundError, ArtifactRef, ArtifactStore

MODEL_STAGES = ("rl", "sft")  # what a run is exported as, in order of preference
SKIPPED_PREFIXES = ("runs/",)  # TensorBoard logs of the training: not part of a model repo


class ExportError(ValueError):
    """A reference or an artifact that cannot be exported; the message says what to change."""


@dataclass(frozen=True)
class Student:
    """A trained model artifact and what it came from."""

    ref: ArtifactRef
    manifest: Manifest
    budget: BudgetConfig
    dataset: ArtifactRef | None
    base_model: str | None
    base_note: str


# --------------------------------------------------------------------------- resolving a reference


def resolve_student(store: ArtifactStore, ref: str) -> tuple[ArtifactRef, ArtifactRef | None]:
    """(model artifact, its evaluation or None) for REF: `sft/<fp>` or `rl/<fp>`, or a run id, a unique prefix
    of one, or `latest` (the newest run with a trained model): that run's rl model if it has one, else its sft
    one, and the run's evaluation when it evaluated that model. Raises ExportError / ArtifactNotFoundError."""
    if "/" in ref:
        model = ArtifactRef.parse(ref)
        if model.stage not in MODEL_STAGES:
            raise ExportError(f"{ref}: stage {model.stage} is not a trained model; give sft/<fp>, rl/<fp> or a run id")
        store.manifest(model)  # missing: ArtifactNotFoundError naming the store
        record = _producing_run(store, model)
        return model, _run_evaluation(store, record, model) if record else None
    record = _latest_model_run(store) if ref == "latest" else store.read_run(store.resolve_run(ref))
    found = _run_model(store, record)
    if found is None:
        ran = ", ".join(record.get("stages", {})) or "nothing"
        raise ExportError(f"run {record['run_id']} trained no model (it ran: {ran}); run it through sft or rl")
    return found, _run_evaluation(store, record, found)


def _producing_run(store: ArtifactStore, ref: ArtifactRef) -> dict[str, Any] | None:
    """The newest run whose manifest records ``ref`` as one of its stages' artifacts."""
    for record in reversed(store.list_runs()):
        if record.get("stages", {}).get(ref.stage, {}).get("artifact") == ref.key:
            return dict(record)
    return None


def _run_model(store: ArtifactStore, record: Mapping[str, Any]) -> ArtifactRef | None:
    stages = record.get("stages", {})
    for stage in MODEL_STAGES:
        key = stages.get(stage, {}).get("artifact")
        if key and store.exists(ArtifactRef.parse(key)):
            return ArtifactRef.parse(key)
    return None


def _latest_model_run(store: ArtifactStore) -> dict[str, Any]:
    for record in reversed(store.list_runs()):
        if _run_model(store, record) is not None:
            return dict(record)
    raise ArtifactNotFoundError(f"no run in {store.root} trained a model; list runs with `bard artifacts runs`")


def _run_evaluation(store: ArtifactStore, record: Mapping[str, Any], model: ArtifactRef) -> ArtifactRef | None:
    """The run's evaluate artifact when it is committed and evaluated ``model``."""
    key = record.get("stages", {}).get("evaluate", {}).get("artifact")
    if not key or not store.exists(ArtifactRef.parse(key)):
        return None
    evaluation = ArtifactRef.parse(key)
    return evaluation if evaluated_label(store.manifest(evaluation), model) else None


def evaluated_label(evaluation: Manifest, model: ArtifactRef) -> str | None:
    """The label under which an evaluation ran ``model`` (its config's models: label -> identity)."""
    models: Mapping[str, str] = evaluation.config.get("models", {})
    return next((label for label, identity in models.items() if identity == model.key), None)


# --------------------------------------------------------------------------- what the student came from


def trained_student(store: ArtifactStore, ref: ArtifactRef) -> Student:
    """The model artifact with its budget section, dataset and base model, read from the manifests."""
    if ref.stage not in MODEL_STAGES:
        raise ExportError(f"{ref.key} is not a trained model (stage {ref.stage}); export an sft/ or rl/ artifact")
    manifest = store.manifest(ref)
    dataset = ArtifactRef.parse(manifest.inputs["dataset"]) if "dataset" in manifest.inputs else None
    carriers = [manifest, *([store.manifest(dataset)] if dataset else [])]
    carrier = next((m for m in carriers if "budget" in m.config), None)
    if carrier is None:
        raise ExportError(f"{ref.key}: neither it nor its dataset records a budget section; it cannot be exported")
    if ref.stage == "sft" and carrier.stage == "materialize" and carrier.config.get("budget_conditioning") is False:
        raise ExportError(
            f"{ref.key} was trained budget-agnostic ({carrier.stage}/{carrier.fingerprint} has "
            "materialize.budget_conditioning: false): it learned no budget contract to export; copy its files with "
            f"`bard artifacts export {ref.key} DIR` instead"
        )
    _check_prompts(ref, carrier, BudgetConfig.model_validate(carrier.config["budget"]))
    base_model, note = _base(store, manifest)
    return Student(ref, manifest, BudgetConfig.model_validate(carrier.config["budget"]), dataset, base_model, note)


def _check_prompts(ref: ArtifactRef, carrier: Manifest, budget: BudgetConfig) -> None:
    """The contract loads today's prompt files: refuse one whose text changed since the student's data."""
    for name in (budget.user_template, budget.effort_template):
        recorded = carrier.prompts.get(name)
        if recorded and recorded != load_prompt(name).sha256:
            raise ExportError(
                f"{ref.key}: prompt file {name!r} changed since {carrier.stage}/{carrier.fingerprint} used it "
                f"(sha256 {recorded[:12]}… then, {load_prompt(name).sha256[:12]}… now); the exported chat template "
                "would not render what the student was trained on: restore the file's old text"
            )


def _base(store: ArtifactStore, manifest: Manifest) -> tuple[str | None, str]:
    """(Hub id or None, a sentence) for where the student's weights started (RL: through its start)."""
    if manifest.stage == "rl":
        start = manifest.inputs.get("start")
        if start and start.split("/", 1)[0] in MODEL_STAGES:
            return _base(store, store.manifest(ArtifactRef.parse(start)))
        identity = start or str(manifest.config.get("start", ""))
    else:
        identity = str(manifest.config.get("student", ""))
    if identity.startswith("hub:"):
        hub_id = identity[len("hub:") :].rsplit("@", 1)[0]
        return hub_id, f"fine-tuned from [{hub_id}](https://huggingface.co/{hub_id}) ({identity})"
    if identity.startswith("path:"):
        return None, f"fine-tuned from a local model folder ({identity[len('path:') :]}), not a Hub model"
    if identity.startswith("model/"):
        built = store.manifest(ArtifactRef.parse(identity)).config
        kind = built.get("kind", "a built model")
        return None, (
            f"a toy model the pipeline built ({identity}, kind `{kind}`: "
            + ("random initialisation" if kind == "toy_random" else "not a Hub model")
            + "), a demonstration of the pipeline, not a useful reasoner"
        )
    return None, f"unrecorded start ({identity or 'no student identity in the manifest'})"


# --------------------------------------------------------------------------- the folder


def export_student(
    store: ArtifactStore,
    ref: ArtifactRef,
    dest: Path,
    *,
    evaluation: ArtifactRef | None = None,
    license: str = DEFAULT_LICENSE,
    dataset_repo: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the student ``ref`` (sft/<fp> or rl/<fp>) to ``dest`` (new or empty) as a Hugging Face model
    folder with its budget contract, generation config, the evaluation's plots and a model card."""
    student = trained_student(store, ref)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and is not an empty folder; export into a new folder")
    eval_manifest = store.manifest(evaluation) if evaluation else None
    if evaluation and eval_manifest and evaluated_label(eval_manifest, ref) is None:
        evaluated = ", ".join(f"{k}={v}" for k, v in eval_manifest.config.get("models", {}).items())
        raise ExportError(f"{evaluation.key} did not evaluate {ref.key} (it evaluated {evaluated or 'nothing'})")
    existed = dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        facts = _write_folder(store, student, dest, evaluation, eval_manifest)
    except BaseException:  # no half-written model folder is left behind to be mistaken for an export
        shutil.rmtree(dest, ignore_errors=True)
        if existed:
            dest.mkdir()
        raise
    card = dataclasses.replace(facts, license=license, dataset_repo=dataset_repo, repo_id=repo_id)
    (dest / "README.md").write_text(model_card(card), encoding="utf-8")
    return dest


def _write_folder(
    store: ArtifactStore, student: Student, dest: Path, evaluation: ArtifactRef | None, eval_manifest: Manifest | None
) -> ModelCardFacts:
    """Weights, tokenizer, contract, generation config and plots into ``dest``; returns the card's facts."""
    ref, contract = student.ref, student.budget.contract()
    for entry in student.manifest.files:
        name = entry.name[len(MODEL_PREFIX) + 1 :] if entry.name.startswith(MODEL_PREFIX + "/") else None
        if name and not name.startswith(SKIPPED_PREFIXES):
            store.fetch_file(ref, entry, dest / name)
    if not (dest / "config.json").is_file():
        raise ExportError(f"{ref.key} has no {MODEL_PREFIX}/config.json: not a complete model artifact")
    eos_ids = _write_tokenizer(dest, contract)
    generation = write_generation_config(dest, contract, _sampling(eval_manifest), eos_ids)
    (dest / CONTRACT_FILE).write_text(contract.dumps(), encoding="utf-8")
    metrics, plots = _evaluation_files(store, evaluation, eval_manifest, ref, dest)
    return ModelCardFacts(
        model_artifact=ref.key,
        stage=ref.stage,
        run_name=_run_name(store, ref),
        contract=contract,
        base_model=student.base_model,
        base_note=student.base_note,
        dataset_artifact=student.dataset.key if student.dataset else None,
        evaluation=evaluation.key if evaluation else None,
        metrics=tuple(metrics),
        plots=tuple(plots),
        generation=generation,
    )


def _write_tokenizer(dest: Path, contract: BudgetContract) -> tuple[int | None, int | None]:
    """Put the contract in front of the tokenizer's own chat template and save it in place; returns the
    (eos, pad) token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(dest)
    base = tokenizer.chat_template
    if not isinstance(base, str) or not base.strip():
        raise ExportError(
            f"the stored tokenizer has no single chat template ({type(base).__name__}); the contract needs one"
        )
    (dest / "chat_template.jinja").unlink(missing_ok=True)  # one source of the template: the one saved below
    tokenizer.chat_template = contract.chat_template(base)
    tokenizer.save_pretrained(dest)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return tokenizer.eos_token_id, pad


def _sampling(evaluation: Manifest | None) -> EvaluateConfig:
    """The evaluation's sampling settings (its fingerprinted section), else the defaults."""
    if evaluation is None:
        return EvaluateConfig()
    fields = {k: evaluation.config[k] for k in ("temperature", "top_p", "answer_tokens") if k in evaluation.config}
    return EvaluateConfig(**fields)


def write_generation_config(
    dest: Path, contract: BudgetContract, sampling: EvaluateConfig, ids: tuple[int | None, int | None]
) -> dict[str, Any]:
    """generation_config.json: room for the largest tier's accepted reasoning plus the answer."""
    bound = contract.spec.bounds(contract.spec.tiers_tokens[-1])[1]
    config: dict[str, Any] = {
        "do_sample": sampling.temperature > 0,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": int(bound) + sampling.answer_tokens,
    }
    eos, pad = ids
    config.update({k: v for k, v in (("eos_token_id", eos), ("pad_token_id", pad)) if v is not None})
    from transformers import GenerationConfig

    GenerationConfig(**config).save_pretrained(dest)  # type: ignore[no-untyped-call]
    return config


def _evaluation_files(
    store: ArtifactStore, evaluation: ArtifactRef | None, manifest: Manifest | None, model: ArtifactRef, dest: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """(this model's metrics rows, the plots copied to ``dest/plots``) of the evaluation."""
    if evaluation is None or manifest is None:
        return [], []
    label = evaluated_label(manifest, model)
    rows = [r for r in store.read_table(evaluation, "metrics").to_pylist() if r["model"] == label]
    plots = []
    for entry in manifest.files:
        if entry.name.startswith("plots/") and entry.name.endswith((".png", ".svg")):
            store.fetch_file(evaluation, entry, dest / entry.name)
            plots.append(entry.name)
    return rows, plots


def _run_name(store: ArtifactStore, ref: ArtifactRef) -> str:
    """The name of the newest run that produced ``ref`` (the recipe's name), else the artifact key."""
    record = _producing_run(store, ref)
    return str(record.get("name") or ref.key) if record else ref.key


def export_to_temp(
    store: ArtifactStore, ref: ArtifactRef, **kwargs: Any
) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
    """Export into a fresh temporary folder (the caller cleans it up): for an upload or a server."""
    tmp = tempfile.TemporaryDirectory(prefix="bard-export-")
    try:
        return export_student(store, ref, Path(tmp.name) / "model", **kwargs), tmp
    except BaseException:
        tmp.cleanup()
        raise
