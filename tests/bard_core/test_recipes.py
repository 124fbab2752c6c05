from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.experiment import load_experiment
from bard_core.recipes import RECIPES_DIR, ConfigError, load_config, recipe_names, resolve_recipe
from tests.conftest import REPO


def test_packaged_recipes_are_found_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ here
    names = recipe_names()
    assert {"toy", "smoke", "experiments/bard-claims"} <= set(names)
    assert resolve_recipe("toy") == RECIPES_DIR / "toy.yaml"
    assert resolve_recipe("configs/toy.yaml") == RECIPES_DIR / "toy.yaml"  # the docs' path, outside a checkout
    assert load_config("toy").name == load_config(RECIPES_DIR / "toy.yaml").name
    experiment = load_experiment("experiments/smoke-claims")
    assert load_config(experiment.base).name == load_config("smoke").name


def test_a_local_file_wins_over_a_packaged_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("toy").write_text("name: mine\n")
    assert load_config("toy").name == "mine"


def test_unknown_recipe_lists_the_names() -> None:
    with pytest.raises(ConfigError, match=r"neither a file nor a packaged recipe; .* smoke, .*toy"):
        resolve_recipe("no-such-recipe")


def test_the_checkout_configs_folder_is_the_packaged_one() -> None:
    assert (REPO / "configs").resolve() == RECIPES_DIR.resolve()
