"""The exported cards parse as the Hub parses them: the model card (`bard export`) and the dataset card
(`bard artifacts export materialize/...`)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard, ModelCard

from bard_core.budget import BudgetSpec
from bard_core.config.stages import BudgetConfig
from bard_core.materialize import dataset_card
from bard_core.model_card import ModelCardFacts, model_card

MODES = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}
ROW = {"model": "rl", "benchmark": "toy", "mode": "budget", "problems": 8, "accuracy": 0.5, "accuracy_ci_low": 0.25,
       "accuracy_ci_high": 0.75, "mean_reasoning_tokens": 30.5, "mean_relative_deviation": 0.1,
       "within_tolerance": 0.8}  # fmt: skip


def _facts(**overrides: object) -> ModelCardFacts:
    contract = BudgetConfig(tiers_tokens=(16, 32, 64), modes=MODES, default_budget="medium").contract()
    base: dict[str, object] = {
        "model_artifact": "rl/abc",
        "stage": "rl",
        "run_name": "toy",
        "contract": contract,
        "base_model": "Qwen/Qwen3-8B",
        "base_note": "fine-tuned from Qwen/Qwen3-8B",
        "dataset_artifact": "materialize/def",
        "evaluation": "evaluate/123",
        "metrics": (
            {**ROW, "budget_tokens": 32},
            {**ROW, "budget_tokens": 16},
            {**ROW, "mode": "effort", "budget_tokens": None, "effort": "low", "accuracy": 0.4},
        ),
        "plots": ("plots/toy.png",),
        "generation": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 144},
        "repo_id": "me/bard-toy",
    }
    return ModelCardFacts(**{**base, **overrides})  # type: ignore[arg-type]


def test_the_model_card_parses_with_the_hub_metadata_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(model_card(_facts(dataset_repo="me/bard-toy-data")), encoding="utf-8")
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["base_model"] == "Qwen/Qwen3-8B" and data["datasets"] == ["me/bard-toy-data"]
    assert data["license"] == "apache-2.0" and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-generation"
    assert data["tags"] == ["reasoning", "budget-aware", "bard", "distillation"]
    text = card.text
    # per budget, in budget order: accuracy with its CI, mean tokens, deviation, within tolerance
    assert text.index("| toy | 16 | 8 | 0.50 | [0.25, 0.75] | 30.5 | 0.10 | 0.80 |") < text.index("| toy | 32 |")
    assert "| toy | low | 0.40 | 30.5 |" in text  # the effort mode's row
    assert "| `medium` | the 32-token tier | 38 |" in text and "| `low` | 25% of the problem's" in text
    assert "neither `thinking_budget` nor `reasoning_effort`: `medium`" in text
    assert "![toy](plots/toy.png)" in text and 'from_pretrained("me/bard-toy")' in text
    assert '"reasoning_effort": "low"' in text and "thinking_budget=32" in text


def test_a_built_model_has_no_base_model_and_says_so(tmp_path: Path) -> None:
    note = "a toy model the pipeline built (random initialisation)"
    path = tmp_path / "README.md"
    path.write_text(model_card(_facts(base_model=None, base_note=note, evaluation=None, metrics=())), "utf-8")
    card = ModelCard.load(path)
    assert "base_model" not in card.data.to_dict() and "datasets" not in card.data.to_dict()
    assert "random-init" in card.data.tags and note in card.text
    assert "No evaluation was exported" in card.text


def test_the_dataset_card_parses_with_hub_metadata(tmp_path: Path) -> None:
    stats = {"problems": 3, "sft_records": {"train": {"gold": 2, "compressed": 1200}, "validation": {"gold": 1}},
             "rl_prompts": {"train": 4}, "tiers": {}, "gold_reasoning_tokens": {}, "reject_reasons": {}}  # fmt: skip
    path = tmp_path / "README.md"
    path.write_text(dataset_card(stats, BudgetSpec((16, 32)), ["sft_train.parquet", "rl_train.parquet"], None))
    data = DatasetCard.load(path).data.to_dict()
    assert [c["config_name"] for c in data["configs"]] == ["sft", "rl"]
    assert data["license"] == "apache-2.0" and data["language"] == ["en"]
    assert data["task_categories"] == ["text-generation"] and "budget-aware" in data["tags"]
    assert data["size_categories"] == ["1K<n<10K"]  # 1207 records
