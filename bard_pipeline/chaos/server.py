"""The Prefect server restarted under a deployment run: ``bard up``'s server is stopped mid-run and started
again on its database. The run must complete, or, marked crashed while the API was away, be finished by a
retry (the UI's Retry button) from the committed stages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bard_pipeline.chaos.drivers import CleanRun
from bard_pipeline.chaos.harness import completed_rows
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.rows import diff, run_rows
from bard_pipeline.infra.stack import Stack, stop_tree
from bard_pipeline.infra.store import ArtifactNotFoundError, ArtifactStore

DOWN_S = 5.0  # how long the API stays away


@dataclass(frozen=True)
class StackTarget:
    """A running ``bard up`` stack: its API, its state folder, and where its runs keep their store."""

    api: str
    state_dir: Path
    store_overrides: Callable[[str], Sequence[str]]  # prefix -> store.root / endpoint overrides
    store: Callable[[str], ArtifactStore]


DISTILL = "bard-distill/distill"


def call(api: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """``await work(client)`` with a Prefect client of ``api``, from synchronous code."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def session() -> Any:
        with temporary_settings({PREFECT_API_URL: api}):
            async with get_client() as client:
                return await work(client)

    return asyncio.run(session())


def trigger(api: str, parameters: Mapping[str, Any], deployment: str = DISTILL) -> Any:
    """A run of ``deployment``, as the UI's Run button starts it; its id."""

    async def work(client: Any) -> Any:
        found = await client.read_deployment_by_name(deployment)
        return (await client.create_flow_run_from_deployment(found.id, parameters=dict(parameters))).id

    return call(api, work)


def final(api: str, run_id: Any, timeout_s: float = 600.0) -> Any:
    """The flow run once its state is final."""

    async def work(client: Any) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(1)
        raise TimeoutError(f"flow run {run_id} did not finish within {timeout_s:.0f} s")

    return call(api, work)


def retry(api: str, run_id: Any) -> None:
    """What the UI's Retry button does: the run back to scheduled, to rerun from its committed stages."""
    from prefect.states import Scheduled

    async def work(client: Any) -> None:
        await client.set_flow_run_state(run_id, Scheduled(name="AwaitingRetry"), force=True)

    call(api, work)


def stages(store: ArtifactStore, run_id: str) -> dict[str, str]:
    try:
        return {k: v["status"] for k, v in store.read_run(run_id)["stages"].items()}
    except ArtifactNotFoundError:
        return {}


def server_restart(clean: CleanRun, stack: StackTarget, restart: Callable[[Stack, int], None]) -> TrialResult:
    """A deployment run of the clean run's recipe; the server stopped once a stage is committed, ``restart``ed
    after ``DOWN_S``. ``restart`` is ``bard_pipeline.flows.stack_cli.start_server`` (passed in: this layer does
    not import the command line)."""
    prefix = f"restart-{uuid.uuid4().hex[:8]}"
    params = {"recipe": clean.recipe, "overrides": [*clean.overrides, *stack.store_overrides(prefix)],
              "until": clean.until}  # fmt: skip
    store = stack.store(prefix)
    run_id = trigger(stack.api, params)
    deadline = time.monotonic() + 300
    while "ingest" not in stages(store, str(run_id)):  # under way: a stage is committed
        if time.monotonic() > deadline:
            return TrialResult(Fault.SERVER_RESTART, False, detail="the run did not start within 300 s")
        time.sleep(0.5)
    state = Stack(stack.state_dir)
    server = state.components()["prefect-server"]
    t_fault = time.monotonic()
    stop_tree(server.pid, 10.0)
    time.sleep(DOWN_S)
    restart(state, server.port or 4200)
    run = final(stack.api, run_id)
    retried = not run.state.is_completed()
    if retried:
        retry(stack.api, run_id)
        run = final(stack.api, run_id)
    recovery_s = time.monotonic() - t_fault
    if not run.state.is_completed():
        return TrialResult(Fault.SERVER_RESTART, False, recovery_s=recovery_s, detail=f"ended {run.state.name}")
    record = store.read_run(str(run_id))
    rows = diff(clean.expected(), run_rows(store, record))
    completed_rows(store)  # every artifact of the run verifies
    how = "crashed, the retry finished it" if retried else "the run completed"
    skipped = stages(store, str(run_id)).get("ingest") == "skipped"
    survived = rows.equal and (skipped or not retried)
    return TrialResult(Fault.SERVER_RESTART, survived, rows.lost, rows.duplicated, recovery_s, detail=how)
