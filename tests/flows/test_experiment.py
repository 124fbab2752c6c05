"""The experiment flow on a two-arm smoke experiment, for real (Prefect API, Ray, a file store): arms share the
data stages and the SFT (stage execution counts), each evaluates only its own series, and the report's
accuracy is what the stored generations say."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bard_core.evaluation import recompute_accuracy
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from tests.conftest import CONFIGS
from tests.support.flows import statuses

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
EXPERIMENT = str(CONFIGS / "experiments" / "smoke-claims.yaml")
SHARED = ["tokenizer", "model:toy-student", "ingest", "sample", "compress", "materialize", "sft"]
SERIES = {"bard": "rl", "sft_only": "sft"}


def _json(store: ArtifactStore, ref: ArtifactRef, name: str) -> Any:
    entry = next(e for e in store.manifest(ref).files if e.name == name)
    return json.loads(store.read_bytes(ref, entry))


def _run(store_root: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], ArtifactStore]:
    from bard_pipeline.flows.experiment import experiment

    result = experiment(recipe=EXPERIMENT, overrides=[f"store.root={store_root}"])
    store = ArtifactStore(store_root)
    return result, {name: store.read_run(arm["run"]) for name, arm in result["arms"].items()}, store


def test_a_two_arm_experiment_shares_artifacts_and_reports_its_generations(tmp_path: Path) -> None:
    result, records, store = _run(f"file://{tmp_path}/store")
    executed = Counter(s for r in records.values() for s, info in r["stages"].items() if info["status"] == "executed")
    assert {s: executed[s] for s in SHARED} == dict.fromkeys(SHARED, 1)  # data stages and the SFT: once
    assert statuses(records["sft_only"]) == {**dict.fromkeys(SHARED, "skipped"), "evaluate": "executed"}  # no RL
    assert executed["rl"] == 1 and executed["evaluate"] == 2
    sft = {r["stages"]["sft"]["artifact"] for r in records.values()}
    assert len(sft) == 1

    report = ArtifactRef.parse(result["report"])
    comparison = _json(store, report, "comparison.json")
    for arm, label in SERIES.items():
        evaluation = ArtifactRef.parse(result["arms"][arm]["evaluate"])
        assert {m["model"] for m in store.read_table(evaluation, "metrics").to_pylist()} == {label}  # its series only
        recomputed = recompute_accuracy(store.read_table(evaluation, f"generations_{label}").to_pylist())
        rows = comparison["arms"][arm]
        assert [r["budget_tokens"] for r in rows] == [16, 32, 64, 128]
        for row in rows:
            assert row["accuracy"] == recomputed[(label, "toy-heldout", "budget", row["budget_tokens"])]
            assert row["problems"] == 8
    assert comparison["cross_check"]["max_accuracy_difference_vs_evaluate"] == pytest.approx(0.0, abs=1e-12)
    assert [c["kind"] for c in comparison["claims"]] == ["length_follows_budget", "beats"]
    markdown = _text(store, report, "report.md")
    assert "## What was measured" in markdown and "## Claims" in markdown and "sft_only" in markdown
    sample = store.manifest(ArtifactRef.parse(records["bard"]["stages"]["sample"]["artifact"]))
    for arm, record in records.items():  # both arms rest on one teacher run: each counts what it cost
        assert comparison["cost"][arm]["teacher"] == record["cost"]["teacher"]
        assert record["cost"]["teacher"]["requests"] == sample.usage["calls"] > 0
    assert "teacher (requests · tokens · $)" in markdown and "## Accuracy against teacher cost" in markdown
    assert _png(store, report, "plots/accuracy_vs_teacher_cost.png")
    assert store.read_run(result["run"])["stages"]["experiment"]["status"] == "executed"

    again, records2, _ = _run(f"file://{tmp_path}/store")
    assert again["report"] == result["report"]
    assert all(set(statuses(r).values()) == {"skipped"} for r in records2.values())
    assert store.read_run(again["run"])["stages"]["experiment"]["status"] == "skipped"


def _png(store: ArtifactStore, ref: ArtifactRef, name: str) -> bool:
    entry = next(e for e in store.manifest(ref).files if e.name == name)
    return store.read_bytes(ref, entry).startswith(b"\x89PNG")


def _text(store: ArtifactStore, ref: ArtifactRef, name: str) -> str:
    entry = next(e for e in store.manifest(ref).files if e.name == name)
    return store.read_bytes(ref, entry).decode("utf-8")


def test_the_cli_refuses_arms_that_are_not_evaluated_alike_before_anything_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bard_pipeline.flows.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"name: bad\nbase: {CONFIGS / 'smoke.yaml'}\narms:\n  bard: {{series: rl}}\n"
        "  more: {series: sft, overrides: ['evaluate.samples_per_problem=3']}\n"
    )
    result = CliRunner().invoke(app, ["experiment", str(bad), f"store.root=file://{tmp_path}/store"])
    assert result.exit_code == 2
    assert "arm 'more' is not evaluated like arm 'bard': sampling differ" in result.output
    assert not (tmp_path / "store").exists()  # refused before any arm ran
