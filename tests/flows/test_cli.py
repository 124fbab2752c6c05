from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import yaml
from typer.testing import CliRunner

from flows.cli import app
from infra.store import ArtifactRef, ArtifactStore
from infra.writer import ArtifactWriter
from tests.conftest import CONFIGS

runner = CliRunner()


def test_validate_checks_every_recipe(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", *map(str, sorted(CONFIGS.glob("*.yaml")))])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "toy.yaml" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample: {n_samples: 0}\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "sample.n_samples" in result.output and "Fix:" in result.output


def test_config_show_prints_the_resolved_config_with_overrides() -> None:
    result = runner.invoke(
        app, ["config", "show", str(CONFIGS / "toy.yaml"), "sample.n_samples=7", "budget.tolerance=0.1"]
    )
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["sample"]["n_samples"] == 7 and shown["budget"]["tolerance"] == 0.1
    assert shown["compress"]["max_attempts"] == 3  # defaults are resolved, not omitted
    result = runner.invoke(app, ["config", "show", str(CONFIGS / "toy.yaml"), "sample.nope=1"])
    assert result.exit_code == 2 and "unknown field" in result.output


def test_artifacts_commands(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store"
    store = ArtifactStore(root)
    ref = ArtifactRef("ingest", "a" * 20)
    writer = ArtifactWriter(store, ref)
    writer.write_table("problems", pa.table({"x": [1, 2]}))
    writer.commit(inputs={}, config={"k": 1}, prompts={})
    store.write_run(
        "run1",
        {
            "run_id": "run1",
            "name": "t",
            "status": "completed",
            "started_at": "now",
            "stages": {"ingest": {"artifact": ref.key, "status": "executed"}},
        },
    )

    listed = runner.invoke(app, ["artifacts", "ls", "--store", root])
    assert listed.exit_code == 0 and "ingest/aaaa" in listed.output
    shown = runner.invoke(app, ["artifacts", "show", ref.key, "--store", root])
    assert json.loads(shown.stdout)["rows"] == {"problems": 2}
    assert runner.invoke(app, ["artifacts", "verify", "--store", root]).exit_code == 0
    exported = runner.invoke(app, ["artifacts", "export", ref.key, str(tmp_path / "out"), "--store", root])
    assert exported.exit_code == 0 and (tmp_path / "out" / "problems.parquet").is_file()
    runs = runner.invoke(app, ["artifacts", "runs", "--store", root])
    assert "run1" in runs.output and "ingest:executed" in runs.output

    entry = store.manifest(ref).file("problems.parquet")
    (tmp_path / "store" / "ingest" / ref.fingerprint / entry.path).write_bytes(b"corrupt")
    verify = runner.invoke(app, ["artifacts", "verify", ref.key, "--store", root])
    assert verify.exit_code == 1 and "BAD" in verify.output and "does not match the manifest" in verify.output
    assert runner.invoke(app, ["artifacts", "rm", ref.key, "--store", root]).exit_code == 0
    missing = runner.invoke(app, ["artifacts", "show", ref.key, "--store", root])
    assert missing.exit_code == 2 and "no artifact" in missing.output
    assert runner.invoke(app, ["artifacts", "show", "not-a-ref", "--store", root]).exit_code == 2


def test_data_ls_lists_bundled_sets() -> None:
    result = runner.invoke(app, ["data", "ls"])
    assert result.exit_code == 0 and "math500" in result.output and "gsm8k_train" in result.output
