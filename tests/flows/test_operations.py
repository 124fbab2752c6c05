"""Operations against a real stack started with `bard up --s3` (a Prefect server with its UI, the serve
process of our deployments, an S3 server): trigger from the API as the UI does, retry a failed run,
rerun one stage, the teacher watcher, bad parameters, and `bard down` leaving nothing behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bard_pipeline.chaos.server import DISTILL, call, final, retry, trigger
from bard_pipeline.infra.stack import Stack, alive, descendants
from bard_pipeline.infra.store import ArtifactStore
from tests.conftest import CONFIGS, SmokeRun, free_port
from tests.support.chaos import clean_run

pytestmark = pytest.mark.slow
SMOKE = str(CONFIGS / "smoke.yaml")


@dataclass
class LocalStack:
    api: str
    ui: str
    s3: str
    state_dir: Path
    fail_file: Path
    pids: list[int]

    def store_overrides(self, prefix: str) -> list[str]:
        return [f"store.root=s3://bard/{prefix}", f"store.endpoint_url={self.s3}"]

    def store(self, prefix: str) -> ArtifactStore:
        return ArtifactStore(f"s3://bard/{prefix}", self.s3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    from bard_pipeline.flows.cli import app

    root = tmp_path_factory.mktemp("stack")
    port, s3_port = free_port(), free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BARD_FAIL_STAGE_FILE", str(root / "fail-once"))  # armed per test by writing the file
        env.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        env.setenv("BARD_CACHE_DIR", str(root / "cache"))
        env.setenv("AWS_ACCESS_KEY_ID", "local")
        env.setenv("AWS_SECRET_ACCESS_KEY", "local-secret")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        args = ["up", "--state-dir", str(root / "state"), "--port", str(port), "--s3", "--s3-port", str(s3_port),
                "--recipe", SMOKE, "--watch-cron", ""]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        pids = [c.pid for c in Stack(root / "state").components().values()]
        yield LocalStack(
            f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{s3_port}",
            root / "state", root / "fail-once", pids,
        )  # fmt: skip
        Stack(root / "state").stop()  # no-op when the last test already stopped it


async def _logs(client: Any, run_id: Any, expect: str, timeout_s: float = 60) -> str:
    """The run's logs once they contain ``expect`` (the runner ships logs a little after the state changes)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline, text = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline and expect not in text:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        text = "\n".join(entry.message for entry in logs)
        await asyncio.sleep(1)
    return text


def _completed(api: str, parameters: dict[str, Any], deployment: str = DISTILL) -> Any:
    """A run triggered as the UI does, once final."""
    return final(api, trigger(api, parameters, deployment), timeout_s=300)


def test_a_deployment_triggered_through_the_api_completes_and_the_ui_shows_it(
    stack: LocalStack, tmp_path: Path
) -> None:
    async def schema(client: Any) -> dict[str, Any]:
        return (await client.read_deployment_by_name(DISTILL)).parameter_openapi_schema

    form = call(stack.api, schema)  # what the UI renders as the run form: recipe, overrides, ... and RunConfig itself
    assert {"recipe", "overrides", "stages", "from_run", "until", "config"} <= set(form["properties"])
    assert "EvaluateConfig" in form["definitions"] and "SampleConfig" in form["definitions"]
    params = {"recipe": SMOKE, "overrides": stack.store_overrides("ui"), "until": "materialize"}
    run = _completed(stack.api, params)
    assert run.state.is_completed(), run.state.message
    assert run.name == "smoke-toy-oracle"  # named after recipe and teacher
    record = stack.store("ui").read_run(str(run.id))
    assert {k: v["status"] for k, v in record["stages"].items()} == {
        "tokenizer": "executed", "model:toy-student": "executed", "ingest": "executed", "sample": "executed",
        "compress": "executed", "materialize": "executed",
    }  # fmt: skip

    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("BARD_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required (BARD_REQUIRE_CHROMIUM=1)")
        pytest.skip("chromium is not installed")
    url = f"{stack.ui}/runs/flow-run/{run.id}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]  # fmt: skip
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "Completed" in dom and run.name in dom
    shot = tmp_path / "flow-run.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,900", url], timeout=120, check=True)
    artifacts = Path(os.environ.get("BARD_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "prefect-ui-flow-run-completed.png")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_a_run_failed_in_compress_then_retried_skips_the_completed_stages(stack: LocalStack) -> None:
    stack.fail_file.write_text("compress 2")  # the serve process fails compress twice: the try and its retry
    params = {"recipe": SMOKE, "overrides": stack.store_overrides("retry"), "until": "materialize"}
    run = _completed(stack.api, params)
    assert run.state.is_failed() and not stack.fail_file.exists()
    first = stack.store("retry").read_run(str(run.id))
    assert first["stages"]["sample"]["status"] == "executed" and "compress" not in first["stages"]

    retry(stack.api, run.id)  # what the UI's Retry button does
    again = final(stack.api, run.id, timeout_s=300)
    assert again.state.is_completed(), again.state.message
    record = stack.store("retry").read_run(str(run.id))
    statuses = {k: v["status"] for k, v in record["stages"].items()}
    assert statuses["ingest"] == statuses["sample"] == "skipped"  # committed by the first attempt
    assert statuses["compress"] == statuses["materialize"] == "executed"


def test_the_single_stage_deployment_reruns_only_that_stage(stack: LocalStack) -> None:
    base = {"recipe": SMOKE, "overrides": stack.store_overrides("stage"), "until": "materialize"}
    first = _completed(stack.api, base)
    assert first.state.is_completed()
    params = {"stage": "materialize", "from_run": str(first.id), "recipe": SMOKE,
              "overrides": [*stack.store_overrides("stage"), "materialize.val_fraction=0.3"]}  # fmt: skip
    rerun = _completed(stack.api, params, "bard-stage/stage")
    assert rerun.state.is_completed(), rerun.state.message
    store = stack.store("stage")
    records = [r for r in store.list_runs() if r["run_id"] != str(first.id)]
    assert len(records) == 1
    statuses = {k: v["status"] for k, v in records[0]["stages"].items()}
    assert statuses.pop("materialize") == "executed"
    assert set(statuses.values()) == {"reused"}  # inputs taken from the first run, nothing else ran


def test_the_watcher_starts_one_run_per_new_teacher_and_skips_unreachable_sources(stack: LocalStack) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from bard_pipeline.infra.teachers import register_teacher

    name = f"toy-oracle-{uuid.uuid4().hex[:6]}"
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    sources = f"[{{kind: store}}, {{kind: openai, base_url: '{dead}', initial: trigger, timeout_s: 2}}]"
    overrides = [*stack.store_overrides("watch"), "watch.until=materialize", f"watch.sources={sources}"]
    params = {"recipe": SMOKE, "overrides": overrides}
    register_teacher(stack.store("watch"), name, "toy-oracle-v2", revision="2")

    def watch() -> Any:
        run = _completed(stack.api, params, "bard-teacher-watcher/watcher")
        assert run.state.is_completed(), run.state.message
        return run

    first = watch()
    logs = call(stack.api, lambda client: _logs(client, first.id, "could not be checked"))
    assert f"openai:{dead}" in logs and "could not be checked" in logs  # a warning, not a failure
    watch()  # the same teacher again: nothing new

    async def triggered(client: Any) -> list[Any]:
        tags = FlowRunFilterTags(all_=[f"teacher:{name}"])
        return list(await client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=tags)))

    runs = call(stack.api, triggered)
    assert len(runs) == 1
    assert "sample.engine.model=toy-oracle-v2" in runs[0].parameters["overrides"]
    assert final(stack.api, runs[0].id, timeout_s=300).state.is_completed()


def test_a_bad_parameter_fails_before_any_stage_with_the_validation_message(stack: LocalStack) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    params = {"recipe": SMOKE, "overrides": [*stack.store_overrides("bad"), "sample.n_samples=0"]}
    run = _completed(stack.api, params)
    assert run.state.is_failed()
    logs = call(stack.api, lambda client: _logs(client, run.id, "sample.n_samples"))
    assert "sample.n_samples" in logs and "greater than or equal to 1" in logs

    async def task_runs(client: Any) -> list[Any]:
        ids = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        return list(await client.read_task_runs(flow_run_filter=ids))

    assert call(stack.api, task_runs) == []  # no stage started


def test_a_run_survives_a_prefect_server_restart_or_its_retry_finishes_it(
    stack: LocalStack, smoke_run: SmokeRun
) -> None:
    """The Prefect server stopped mid-run and started again on its database (bard_pipeline/chaos/server.py): the
    run completes, or (marked crashed while the API was away) the UI's retry finishes it from the committed
    stages; its rows are the smoke run's."""
    from bard_pipeline.chaos.server import StackTarget, server_restart
    from bard_pipeline.flows.stack_cli import start_server

    target = StackTarget(stack.api, stack.state_dir, stack.store_overrides, stack.store)
    result = server_restart(clean_run(smoke_run, "materialize"), target, start_server)
    print("server restart:", result)
    assert result.survived, result.detail
    assert (result.rows_lost, result.rows_duplicated) == (0, 0)


def test_bard_status_then_down_leaves_no_process_of_ours(stack: LocalStack) -> None:
    from bard_pipeline.flows.cli import app

    runner = CliRunner()
    status = runner.invoke(app, ["status", "--state-dir", str(stack.state_dir)])
    assert status.exit_code == 0 and status.output.count("running") == 3, status.output
    tree = [p for pid in stack.pids for p in (pid, *descendants(pid))]
    assert runner.invoke(app, ["down", "--state-dir", str(stack.state_dir)]).exit_code == 0
    assert [p for p in tree if alive(p)] == []
    assert "no stack recorded" in runner.invoke(app, ["status", "--state-dir", str(stack.state_dir)]).output
