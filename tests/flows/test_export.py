"""`bard export`: the smoke run's student as a Hugging Face folder that plain transformers loads, whose chat
template renders the exact prompt the student was trained on, with the contract, generation config, plots
and a model card the Hub parses. The Hub itself cannot be reached: HfApi is a recorder (tests/support/hub.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from bard_core.chat_contract import CONTRACT_FILE, BudgetContract
from bard_core.config.stages import BudgetConfig
from bard_pipeline.flows.cli import app
from bard_pipeline.infra.export import ExportError, export_student, resolve_student
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter
from tests.conftest import SmokeRun
from tests.support.flows import artifact
from tests.support.hub import TOKEN

runner = CliRunner()


def _trained_tokenizer(store: ArtifactStore, ref: ArtifactRef) -> Any:
    """The tokenizer exactly as training stored it (its base chat template, no contract)."""
    folder = Path(tempfile.mkdtemp(prefix="bard-trained-"))
    return AutoTokenizer.from_pretrained(store.fetch_dir(ref, folder, "model/"))


def _budget64_record(smoke_run: SmokeRun) -> tuple[str, list[dict[str, str]]]:
    """(problem text, the trained prompt messages) of an SFT training record at budget 64."""
    store, record = smoke_run.store, smoke_run.record
    rows = store.read_table(artifact(record, "materialize"), "sft_train").to_pylist()
    row = next(r for r in rows if r["budget_tokens"] == 64 and r["kind"] == "compressed")
    problems = store.read_table(artifact(record, "ingest"), "problems").to_pylist()
    problem = next(p["problem"] for p in problems if p["problem_id"] == row["problem_id"])
    return problem, row["prompt"]


def test_a_run_exports_as_a_folder_plain_transformers_loads(smoke_run: SmokeRun, tmp_path: Path) -> None:
    store, record = smoke_run.store, smoke_run.record
    dest = tmp_path / "student"
    result = runner.invoke(app, ["export", record["run_id"][:8], str(dest), "--store", store.root])
    assert result.exit_code == 0, result.output
    rl, evaluation = artifact(record, "rl"), artifact(record, "evaluate")
    assert rl.key in result.output and evaluation.key in result.output  # a run exports its rl model
    tok = AutoTokenizer.from_pretrained(dest)
    problem, trained_prompt = _budget64_record(smoke_run)
    got = tok.apply_chat_template(
        [{"role": "user", "content": problem}], thinking_budget=64, add_generation_prompt=True, tokenize=False
    )
    trained = _trained_tokenizer(store, rl)
    assert got == trained.apply_chat_template(trained_prompt, add_generation_prompt=True, tokenize=False)
    contract = BudgetContract.from_json(json.loads((dest / CONTRACT_FILE).read_text()))
    assert (
        contract.spec.tiers_tokens == (16, 32, 64, 128) and contract.render(problem, 64) == trained_prompt[0]["content"]
    )
    generation = json.loads((dest / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tok.eos_token_id and generation["temperature"] == 0.7
    assert generation["max_new_tokens"] == 160 + 24  # 128 * (1 + 0.25) reasoning + the evaluation's answer tokens
    model = AutoModelForCausalLM.from_pretrained(dest)
    inputs = tok.apply_chat_template([{"role": "user", "content": problem}], thinking_budget=16,
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4 or int(out[0, -1]) == tok.eos_token_id
    card = ModelCard.load(dest / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation" and "budget-aware" in card.data.tags
    assert card.data.base_model is None and "random initialisation" in card.text  # a toy student, said so
    assert "| toy-heldout | 64 | 8 |" in card.text
    plots = sorted(p.relative_to(dest).as_posix() for p in (dest / "plots").iterdir())
    assert plots and all(f"]({p})" in card.text for p in plots)
    assert not (dest / "runs").exists()  # TensorBoard logs stay in the store


def test_refs_resolve_to_the_model_and_its_evaluation(smoke_run: SmokeRun) -> None:
    store, record = smoke_run.store, smoke_run.record
    rl, sft, evaluation = (artifact(record, s) for s in ("rl", "sft", "evaluate"))
    assert resolve_student(store, "latest") == (rl, evaluation)
    assert resolve_student(store, record["run_id"]) == (rl, evaluation)
    assert resolve_student(store, sft.key) == (sft, evaluation)  # the run evaluated its sft model too


def test_a_bad_ref_exits_2_naming_it(smoke_run: SmokeRun, tmp_path: Path) -> None:
    root = smoke_run.store.root
    for ref, reason in (
        ("nosuchrun", "no run 'nosuchrun'"),
        ("sft/" + "0" * 20, "no artifact sft/" + "0" * 20),
        (artifact(smoke_run.record, "evaluate").key, "is not a trained model"),
    ):
        result = runner.invoke(app, ["export", ref, str(tmp_path / "out"), "--store", root])
        assert result.exit_code == 2 and ref in result.output and reason in result.output, result.output
        assert not (tmp_path / "out").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = runner.invoke(app, ["export", "latest", str(tmp_path / "full"), "--store", root])
    assert result.exit_code == 2 and "is not an empty folder" in result.output


def test_push_to_hub_uploads_the_exported_folder(
    smoke_run: SmokeRun, tmp_path: Path, hub: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, dest = smoke_run.store.root, tmp_path / "student"
    args = ["export", "latest", str(dest), "--push-to-hub", "me/bard-smoke", "--private", "--store", root]
    result = runner.invoke(app, [*args, "--license", "mit"])
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output and "https://hub.test/me/bard-smoke/commit/1" in result.output
    assert hub[1] == (
        "create_repo",
        {"repo_id": "me/bard-smoke", "repo_type": "model", "private": True, "exist_ok": True},
    )
    name, upload = hub[2]
    assert name == "upload_folder" and upload["folder_path"] == str(dest) and upload["repo_type"] == "model"
    assert {"README.md", CONTRACT_FILE, "model.safetensors", "generation_config.json"} <= set(upload["files"])
    card = ModelCard.load(dest / "README.md")
    assert card.data.license == "mit" and 'from_pretrained("me/bard-smoke")' in card.text
    monkeypatch.delenv("HF_TOKEN")
    result = runner.invoke(app, ["export", "latest", str(tmp_path / "other"), "--push-to-hub", "me/x", "--store", root])
    assert result.exit_code == 2 and "HF_TOKEN is not set" in result.output and not (tmp_path / "other").exists()


MODES = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}


def test_effort_modes_render_the_trained_mode_prompts(smoke_run: SmokeRun, tmp_path: Path) -> None:
    """A student trained with modes (its sft manifest's budget section; the smoke recipe has none): the
    exported template renders `reasoning_effort` as the contract does, and a Hub base model is the card's."""
    store = ArtifactStore(f"file://{tmp_path}/store")
    source = smoke_run.store.fetch_dir(artifact(smoke_run.record, "sft"), tmp_path / "stored", "model/")
    ref = ArtifactRef("sft", "m" * 20)
    writer = ArtifactWriter(store, ref)
    writer.write_dir("model", source)
    budget = BudgetConfig(tiers_tokens=(16, 32, 64, 128), tolerance=0.25, modes=MODES, default_budget="high")
    config = {"budget": budget.fingerprint_dump(), "student": "hub:HuggingFaceTB/SmolLM2-135M-Instruct@latest"}
    writer.commit(inputs={}, config=config, prompts={})
    dest = export_student(store, ref, tmp_path / "student")
    tok, trained = AutoTokenizer.from_pretrained(dest), AutoTokenizer.from_pretrained(source)
    contract = budget.contract()
    problem = "What is 2 + 3?"
    for kwargs, effort in (
        ({"reasoning_effort": "low"}, "low"),
        ({"reasoning_effort": "medium"}, "medium"),
        ({}, None),
    ):
        got = tok.apply_chat_template([{"role": "user", "content": problem}], add_generation_prompt=True,
                                      tokenize=False, **kwargs)  # fmt: skip
        user = contract.render(problem, effort=effort)
        want = trained.apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
        )
        assert got == want, kwargs
    assert "Reasoning effort: low." in contract.render(problem, effort="low")  # a share mode names the mode
    card = ModelCard.load(dest / "README.md")
    assert (
        card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
        and "| `medium` | the 32-token tier |" in card.text
    )
    assert "No evaluation was exported" in card.text


def test_a_budget_agnostic_student_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    data = ArtifactWriter(store, ArtifactRef("materialize", "d" * 20))
    data.write_json("stats.json", {})
    config = {"budget": BudgetConfig().fingerprint_dump(), "budget_conditioning": False}
    data.commit(inputs={}, config=config, prompts={})
    model = ArtifactWriter(store, ArtifactRef("sft", "a" * 20))
    model.write_json("model/config.json", {})
    model.commit(inputs={"dataset": data.ref.key}, config={}, prompts={})
    with pytest.raises(ExportError, match=r"trained budget-agnostic .*`bard artifacts export sft/a+ DIR`"):
        export_student(store, model.ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()
