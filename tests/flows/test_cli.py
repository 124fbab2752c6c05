from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import yaml
from typer.testing import CliRunner

from bard_pipeline.flows.cli import app
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter
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
    said = " ".join(verify.output.split())  # the console wraps at its width, wherever the store's path ends
    assert verify.exit_code == 1 and "BAD" in said and "does not match the manifest" in said
    assert runner.invoke(app, ["artifacts", "rm", ref.key, "--store", root]).exit_code == 0
    missing = runner.invoke(app, ["artifacts", "show", ref.key, "--store", root])
    assert missing.exit_code == 2 and "no artifact" in missing.output
    assert runner.invoke(app, ["artifacts", "show", "not-a-ref", "--store", root]).exit_code == 2


def test_data_ls_lists_bundled_sets() -> None:
    result = runner.invoke(app, ["data", "ls"])
    assert result.exit_code == 0 and "math500" in result.output and "gsm8k_train" in result.output


RUN_A = "3f2a9c1e-5d1b-4c7a-9e0f-00000000000a"  # full-length ids, as Prefect's flow run UUIDs are
RUN_B = "3f2a9c1e-5d1b-4c7a-9e0f-00000000000b"
RUN_C = "7b1d0c2e-8f3a-4b5c-a6d7-00000000000c"


def _runs_store(tmp_path: Path) -> str:
    """A store with two evaluated runs (A older than B) and a newer run C that stopped before evaluating."""
    root = f"file://{tmp_path}/store"
    store = ArtifactStore(root)
    for run_id, started, name in ((RUN_A, "01", "one"), (RUN_B, "02", "two"), (RUN_C, "03", None)):
        stages = {"ingest": {"artifact": "ingest/" + "a" * 20, "status": "executed"}}
        if name:
            ref = ArtifactRef("evaluate", name * 7)
            writer = ArtifactWriter(store, ref)
            writer.write_bytes("report.md", f"# report {name}".encode())
            writer.write_bytes("report.html", f"<h1>{name}</h1>".encode())
            writer.commit(inputs={}, config={}, prompts={})
            stages["evaluate"] = {"artifact": ref.key, "status": "executed"}
        record = {"run_id": run_id, "name": "toy", "status": "completed", "stages": stages}
        store.write_run(run_id, {**record, "started_at": f"2025-01-01T00:00:{started}+00:00"})
    return root


def test_runs_list_prints_full_ids_on_a_narrow_terminal(tmp_path: Path) -> None:
    root = _runs_store(tmp_path)
    result = runner.invoke(app, ["artifacts", "runs", "--store", root], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["run", RUN_A, RUN_B, RUN_C]  # whole, copyable, oldest first
    assert lines[1].endswith("completed  2025-01-01T00:00:01+00:00  evaluate:executed, ingest:executed")


def test_run_ids_are_taken_as_unique_prefixes(tmp_path: Path) -> None:
    root = _runs_store(tmp_path)
    shown = runner.invoke(app, ["artifacts", "runs", "--run", "7b1d", "--store", root])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["run_id"] == RUN_C
    out = ["--store", root, "--out", str(tmp_path / "reports")]
    report = runner.invoke(app, ["report", RUN_A[:-1] + "a", *out])
    assert report.exit_code == 0 and "# report one" in report.stdout, report.output
    assert "# report two" in runner.invoke(app, ["report", RUN_B[:-2] + "0b", *out]).stdout

    ambiguous = runner.invoke(app, ["report", "3f2a", *out])
    assert ambiguous.exit_code == 2 and "matches 2 runs" in ambiguous.output
    assert RUN_A in ambiguous.output and RUN_B in ambiguous.output
    missing = runner.invoke(app, ["report", "zz", *out])
    assert missing.exit_code == 2 and "no run 'zz'" in missing.output and "bard artifacts runs" in missing.output
    assert "has no evaluate stage" in runner.invoke(app, ["report", "7b", *out]).output
    # `bard run --from-run` refuses a bad id before Prefect or Ray start.
    rerun = runner.invoke(app, ["run", str(CONFIGS / "smoke.yaml"), f"store.root={root}", "--from-run", "3f2a"])
    assert rerun.exit_code == 2 and "matches 2 runs" in rerun.output
    from bard_pipeline.infra.reaper import GUARDED_ENV

    assert os.environ.get(GUARDED_ENV) != str(os.getpid()), "a refused run must not guard its process"


def test_report_latest_is_the_newest_evaluation(tmp_path: Path) -> None:
    root = _runs_store(tmp_path)
    out = ["--store", root, "--out", str(tmp_path / "reports")]
    for args in (["report", *out], ["report", "latest", *out]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "# report two" in result.stdout and f"newest evaluation: run {RUN_B}" in result.output  # not C
    empty = runner.invoke(app, ["report", "--store", f"file://{tmp_path}/empty"])
    assert empty.exit_code == 2 and "has a committed evaluate stage" in empty.output


def test_the_flow_takes_from_run_as_a_prefix(tmp_path: Path) -> None:
    from bard_core.config import RunConfig
    from bard_pipeline.tasks.context import open_context

    root = _runs_store(tmp_path)
    cfg = RunConfig.model_validate({"store": {"root": root}})
    ctx = open_context(cfg, None, [], ["sample"], "7b1d", None, run_id="new")
    assert ctx.reuse == {"ingest": "ingest/" + "a" * 20}
