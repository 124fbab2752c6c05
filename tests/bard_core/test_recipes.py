from __future__ import annotations

import re
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


# Regression tests of the bad-input campaign (bard_pipeline/chaos/bad_input.py): each was a raw traceback or an
# error message that did not say where.


@pytest.mark.parametrize(
    ("text", "error"),
    [("sample:\n  n_samples: " + "9" * 5000 + "\n", "ValueError: Exceeds the limit (4300 digits)"),
     ("sample: " + "[" * 1200 + "]" * 1200 + "\n", "RecursionError")],
    ids=["5000-digit int", "deep nesting"],
)  # fmt: skip
def test_yaml_past_the_parsers_limits_is_a_config_error(tmp_path: Path, text: str, error: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=rf"recipe .*r\.yaml is not valid YAML: {re.escape(error)}"):
        load_config(recipe)
    expected = rf"^override 'sample\.n_samples=.*value is not valid YAML \({error[:5]}"
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(None, ["sample.n_samples=" + text.split(": ", 1)[1].strip().removeprefix("n_samples: ")])
    assert len(str(info.value)) < 600  # the 5000-character override is shown cut short


@pytest.mark.parametrize(
    ("recipe", "override", "where"),
    [("name: foo\n", "name.x=1", "name is 'foo' (type str)"),
     ("name: foo\n", "name.o.x=1", "name is 'foo' (type str)"),
     ("sample: {n_samples: 2}\n", "sample.n_samples.x=1", "sample.n_samples is 2 (type int)"),
     ("budget: {tiers_tokens: [1, 2]}\n", "budget.tiers_tokens.0.x=2", "budget.tiers_tokens.0 is 1 (type int)")],
)  # fmt: skip
def test_override_below_a_value_is_a_config_error(tmp_path: Path, recipe: str, override: str, where: str) -> None:
    (tmp_path / "r.yaml").write_text(recipe)  # was TypeError (str/int item assignment, string indices)
    with pytest.raises(ConfigError, match=rf"^override {re.escape(repr(override))}: {re.escape(where)}, not a section"):
        load_config(tmp_path / "r.yaml", [override])


def test_override_index_must_be_ascii_digits() -> None:
    # '²'.isdigit() is true but int('²') raised ValueError; so did int() of a 5000-digit index
    with pytest.raises(ConfigError, match=r"'ingest\.sources\.²=1': index '²' out of range"):
        load_config("toy", ["ingest.sources.²=1"])
    with pytest.raises(ConfigError, match=r": '9{39}\.\.\. \(5002 characters\) is not an index of a list with 2 items"):
        load_config("toy", ["ingest.sources." + "9" * 5000 + ".size=1"])
    with pytest.raises(ConfigError, match=r"x: unknown field"):
        load_config(None, ["x.²=1"])


def test_validation_error_shows_a_huge_value_short(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("name: 0x" + "f" * 5000 + "\n")  # repr() of the int raised ValueError
    with pytest.raises(ConfigError, match=r"  name: Input should be a valid string \(got <int of 20000 bits>\)"):
        load_config(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("name: " + "x " * 10_000 + "\n")  # a 20,000-character value, echoed whole
    with pytest.raises(ConfigError, match=r"\(got 'x x .{195}\.\.\. \(20001 characters\)\)") as info:
        load_config(tmp_path / "r.yaml")
    assert len(str(info.value)) < 600


def test_a_field_name_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text('sample:\n  "x\\vy": 1\n"a\\nb": 2\n')  # keys YAML allows, quoted
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "r.yaml")
    lines = str(info.value).splitlines()
    assert lines[1:] == [
        "  sample.'x\\x0by': unknown field. Valid fields here: engine, n_samples, prompt_template, resources, "
        "sampling, selection, shard_rows, splits, system_prompt.",
        "  'a\\nb': unknown field. Valid fields here: bridge, budget, compress, evaluate, ingest, materialize, models, "
        "name, ray, rl, sample, sft, store, student, watch.",
    ]


@pytest.mark.parametrize("name", ["a" * 5000, "~no-such-user-bard"], ids=["too long", "unknown ~user"])
def test_a_model_name_no_path_can_be_is_a_config_error(name: str) -> None:
    # Path.is_dir() raised OSError (ENAMETOOLONG), Path.expanduser() RuntimeError, out of the validator
    with pytest.raises(ConfigError, match=rf"<root>: Value error, bridge\.assistant '{name[:100]}.*is not in `models`"):
        load_config(
            None, ["bridge.enabled=true", f"bridge.assistant={name}", f"bridge.engine={{kind: oracle, model: {name}}}"]
        )
