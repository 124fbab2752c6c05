from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from bard_core.config import EXECUTION, ExecutionSection, RunConfig, Section
from bard_core.recipes import ConfigError, apply_override, load_config, validate_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(recipe: Path) -> None:
    assert isinstance(load_config(recipe), RunConfig)


def test_overrides_are_typed_and_dotted() -> None:
    cfg = load_config(
        CONFIGS / "toy.yaml",
        ["sample.n_samples=3", "budget.tiers_tokens=[8, 24]", "ingest.sources.0.size=50", "store.endpoint_url=null"],
    )
    assert cfg.sample.n_samples == 3
    assert cfg.budget.tiers_tokens == (8, 24)
    assert cfg.ingest.sources[0].size == 50  # type: ignore[union-attr]
    assert cfg.store.endpoint_url is None


def test_configs_are_frozen() -> None:
    cfg = RunConfig()
    with pytest.raises(Exception, match="frozen"):
        cfg.sample.n_samples = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sample": {"n_sampels": 2}}, ["sample.n_sampels: unknown field", "Did you mean 'n_samples'"]),
        ({"sample": {"n_samples": 0}}, ["sample.n_samples", "greater than or equal to 1", "Fix: Teacher samples per"]),
        ({"budget": {"tiers_tokens": [64, 16]}}, ["budget.tiers_tokens", "ascending"]),
        ({"store": {"root": "/data/x"}}, ["store.root", "file:// or s3://"]),
        ({"ingest": {"sources": [{"kind": "bundled"}]}}, ["ingest.sources.0.bundled.name: Field required"]),
        ({"ingest": {"sources": [{"kind": "csv"}]}}, ["ingest.sources.0", "'toy', 'bundled', 'file', 'hf'"]),
        (
            {
                "ingest": {
                    "sources": [{"kind": "toy", "families": [{"family": "chain_sum", "difficulty": {"max_term": 3}}]}]
                }
            },
            ["unknown difficulty knob(s) ['max_term']", "max_terms"],
        ),
    ],
)
def test_validation_errors_name_the_field_and_the_fix(data: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(data, origin="recipe.yaml")
    message = str(info.value)
    assert message.startswith("recipe.yaml:")
    for fragment in expected:
        assert fragment in message


def test_bad_overrides_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        apply_override({}, "sample.n_samples")
    with pytest.raises(ConfigError, match=r"neither a file nor a packaged recipe.*toy"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_bytes(b"name: \xff\xfe")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(bad)


def test_exponent_floats_without_a_dot_are_floats() -> None:
    # YAML 1.1 reads 2e-5 as a string; under `rl.trl` that string would reach torch's optimizer.
    cfg = load_config(None, ["rl.trl.learning_rate=2e-5", "sft.trl.weight_decay=1e-2"])
    assert cfg.rl.trl["learning_rate"] == 2e-5 and cfg.sft.trl["weight_decay"] == 0.01


def test_evaluate_section_names_unknown_benchmarks_and_labels() -> None:
    with pytest.raises(ConfigError, match=r"unknown benchmark 'gsm9k'; available: aime24, aime25, amc23, gsm8k_test"):
        load_config(None, ["evaluate.benchmarks=[{kind: bundled, name: gsm9k}]"])
    with pytest.raises(ConfigError, match=r"unknown model label\(s\) \['agnostic'\].*evaluate.checkpoints"):
        load_config(None, ["evaluate.models=[sft, agnostic]"])
    cfg = load_config(None, ["evaluate.models=[sft, agnostic]", "evaluate.checkpoints={agnostic: sft/abc}"])
    assert cfg.evaluate.models == ("sft", "agnostic")


def test_toy_sources_drawing_the_same_problems_are_refused() -> None:
    train = "{kind: toy, split: train, size: 4000, seed: 0}"
    with pytest.raises(ConfigError, match=r"toy sources 0 and 1 draw the same chain_sum problems.*seed: 5"):
        load_config(None, [f"ingest.sources=[{train}, {{kind: toy, split: test, size: 300, seed: 1}}]"])
    cfg = load_config(None, [f"ingest.sources=[{train}, {{kind: toy, split: test, size: 300, seed: 5}}]"])
    assert len(cfg.ingest.sources) == 2


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_a_whole_config_round_trips_as_a_parameter(recipe: Path) -> None:
    # The Prefect UI edits `RunConfig` as JSON: what it sends back must validate to the same config.
    from bard_core.recipes import resolve_config

    cfg = load_config(recipe)
    assert resolve_config(None, [], cfg.model_dump(mode="json")) == cfg
    assert resolve_config("ignored.yaml", ["sample.n_samples=3"], cfg).sample.n_samples == 3
    with pytest.raises(ConfigError, match="the config parameter: 1 config error"):
        resolve_config(None, ["sample.n_samples=0"], cfg)


def test_fingerprint_dump_drops_execution_only_fields_at_any_depth() -> None:
    cfg = load_config(None, ["evaluate.engine=" + '{"kind": "vllm", "model": "student", "python": "/x/python"}'])
    sample = cfg.sample.fingerprint_dump()
    assert "resources" not in sample and "shard_rows" not in sample and sample["n_samples"] == cfg.sample.n_samples
    evaluate = cfg.evaluate.fingerprint_dump()
    assert not {"resources", "shard_rows", "enabled"} & set(evaluate)
    assert "python" not in evaluate["engine"] and evaluate["engine"]["kind"] == "vllm"  # a nested section too
    assert "resources" not in cfg.sft.fingerprint_dump() and "resources" not in cfg.rl.fingerprint_dump()
    assert cfg.sft.fingerprint_dump()["probe"] == cfg.sft.probe.model_dump(mode="json")  # only marked fields go


def test_fields_are_execution_only_by_type_or_by_mark() -> None:
    class Run(ExecutionSection):
        threads: int = 1

    class Inner(Section):
        value: int = 0
        shards: int = Field(default=1, json_schema_extra=EXECUTION)

    class Outer(Section):
        run: Run = Run()
        maybe_run: Run | None = None  # typed as one even while unset
        items: tuple[Inner, ...] = (Inner(), Inner(value=2))
        by_name: dict[str, Inner] = Field(default_factory=lambda: {"a": Inner(shards=3)})

    dump = Outer().fingerprint_dump()
    assert dump == {"items": [{"value": 0}, {"value": 2}], "by_name": {"a": {"value": 0}}}
    assert Outer(items=(Inner(shards=9),)).fingerprint_dump()["items"] == [{"value": 0}]


def _section_dumps(cfg: RunConfig) -> dict[str, object]:
    return cfg.fingerprint_dump()  # every section (and the model catalog) as the stages fingerprint it


@pytest.mark.parametrize("override", ["rl.reward=additive", "rl.init=base", "rl.leak_factor=0.5"])
def test_an_rl_ablation_changes_only_the_rl_section(override: str) -> None:
    base, changed = _section_dumps(RunConfig()), _section_dumps(load_config(None, [override]))
    assert [name for name in base if base[name] != changed[name]] == ["rl"]


def test_rl_options_at_their_default_leave_the_fingerprint_as_it_was() -> None:
    dump = RunConfig().rl.fingerprint_dump()
    assert "reward" not in dump and "init" not in dump  # the addresses from before these options existed
    explicit = load_config(None, ["rl.reward=multiplicative", "rl.init=sft"]).rl.fingerprint_dump()
    assert explicit == dump
    assert load_config(None, ["rl.reward=additive"]).rl.fingerprint_dump() == {**dump, "reward": "additive"}
    assert "leak_factor" not in dump and load_config(None, ["rl.leak_factor=0.5"]).rl.leak_factor == 0.5


def test_bridge_config_refuses_what_would_spend_the_budget_wrongly() -> None:
    from bard_core.recipes import ConfigError, resolve_config

    cfg = resolve_config("toy-bridge", [], None)
    assert cfg.bridge.enabled and cfg.bridge.teacher_budget.share == 0.05
    with pytest.raises(ConfigError, match="exactly one of requests, share, usd"):
        resolve_config("toy-bridge", ["bridge.teacher_budget={share: 0.05, requests: 10}"], None)
    with pytest.raises(ConfigError, match="must load the assistant"):
        resolve_config("toy-bridge", ["bridge.engine.model=toy-student"], None)
    with pytest.raises(ConfigError, match="not in `models`"):
        resolve_config("toy-bridge", ["bridge.assistant=nope", "bridge.engine.model=nope"], None)
    with pytest.raises(ConfigError, match=r"models.toy-ta against ingest.sources\[0\].*overlap"):
        resolve_config("toy-bridge", ["models.toy-ta.corpus.max_terms=4"], None)  # the TA would have seen the task
