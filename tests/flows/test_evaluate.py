"""The evaluate stage at the end of the smoke run: stored generations, metrics that a recomputation from
them reproduces, the truncation baseline, rejected benchmark rows, and a report that renders in Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from bard_core import schemas
from bard_core.evaluation import GROUP_KEYS, recompute_accuracy
from bard_core.schemas import EvalMode
from tests.conftest import SmokeRun
from tests.support.flows import artifact

pytestmark = pytest.mark.slow
LABELS = ("base", "sft", "rl")


def _generations(run: SmokeRun) -> list[dict]:
    ref = artifact(run.record, "evaluate")
    tables = [run.store.read_table(ref, f"generations_{label}") for label in LABELS]
    return schemas.conform(pa.concat_tables(tables), schemas.GENERATIONS, ref.key, "test").to_pylist()


def test_metrics_match_a_recomputation_from_the_stored_generations(smoke_run: SmokeRun) -> None:
    assert smoke_run.state.is_completed(), smoke_run.state.message
    ref = artifact(smoke_run.record, "evaluate")
    rows = _generations(smoke_run)
    metrics = smoke_run.store.read_table(ref, "metrics").to_pylist()
    recomputed = recompute_accuracy(rows)
    assert {tuple(m[k] for k in GROUP_KEYS) for m in metrics} == set(recomputed)
    for m in metrics:
        assert m["accuracy"] == pytest.approx(recomputed[tuple(m[k] for k in GROUP_KEYS)])
        assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]
        assert 0.0 <= m["leak_rate"] <= 1.0 and m["mean_answer_tokens"] >= 0.0  # every verdict measured its answer
    assert all(r["answer_tokens"] is not None and r["leaked"] is not None for r in rows)

    # 8 toy problems + 2 multiple-choice ones, 4 budgets, k=2, for each of base/sft/rl
    budgeted = [r for r in rows if r["mode"] == EvalMode.BUDGET]
    assert len(budgeted) == 3 * 10 * 4 * 2
    # the truncation baseline: every unconstrained sample is cut at every budget, never above it
    unconstrained = [r for r in rows if r["mode"] == EvalMode.UNCONSTRAINED]
    truncated = [r for r in rows if r["mode"] == EvalMode.TRUNCATED]
    assert len(unconstrained) == 10 * 2 and len(truncated) == 4 * len(unconstrained)
    assert all(r["reasoning_tokens"] <= r["budget_tokens"] for r in truncated)
    assert all("</think>" in r["text"] for r in truncated)  # forced closed: an answer was asked for

    manifest = smoke_run.store.manifest(ref)
    assert manifest.stats["benchmarks"] == {"toy-heldout": 8, "mini-mc": 2}
    # dtype auto, resolved in the engine actor; the smoke run forces a CPU without native bf16
    assert "fp32: cpu with no native bf16" in manifest.stats["engine_backend"], manifest.stats["engine_backend"]
    rejected = smoke_run.store.read_table(ref, "rejections").to_pylist()
    assert [(r["problem_id"], r["reason"]) for r in rejected] == [("q3", "missing_answer")]


def test_the_report_renders_in_headless_chromium(smoke_run: SmokeRun, tmp_path: Path) -> None:
    from bard_pipeline.flows.cli import app

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("BARD_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required (BARD_REQUIRE_CHROMIUM=1); apt-get install chromium")
        pytest.skip("chromium is not installed")
    run_id = smoke_run.record["run_id"]
    result = CliRunner().invoke(
        app, ["report", run_id, "--store", f"file://{smoke_run.root}/store", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "| toy-heldout | truncated(sft) | 16 |" in result.output  # the baseline is in the report
    key = artifact(smoke_run.record, "evaluate").key
    compare = CliRunner().invoke(
        app, ["report", run_id, "--compare", key, "--store", f"file://{smoke_run.root}/store", "--out", str(tmp_path)]
    )
    assert compare.exit_code == 0 and "Evaluation comparison" in compare.output, compare.output
    assert "| toy-heldout | rl | 64 |" in compare.output and "+0.0 pt" in compare.output  # itself: no change
    html = next(tmp_path.glob("report-*.html"))
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000"]  # fmt: skip
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1300,1400", html.as_uri()],
        check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", html.as_uri()], check=True, capture_output=True, text=True, timeout=90
    ).stdout
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1300, 1400)
    assert len(set(image.getdata())) > 50  # plots and tables were drawn, not a blank page
    plots = dom.count("data:image/png;base64,")
    assert plots == 2 and dom.count("<tr><td>") >= 3 * 4 * 2  # a plot per benchmark; the metrics table
    artifacts = Path(os.environ.get("BARD_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "evaluation-report.png")
