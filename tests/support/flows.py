"""Running the distillation flow from tests, and reading what its run recorded."""

from __future__ import annotations

from typing import Any

from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from tests.conftest import CONFIGS

SMOKE = str(CONFIGS / "smoke.yaml")
DATA_STAGES = ("tokenizer", "model", "ingest", "sample", "compress", "materialize")


def run_flow(overrides: list[str], recipe: str = SMOKE, **params: Any) -> tuple[Any, dict[str, Any], ArtifactStore]:
    """Run the flow (against the test's Prefect API); returns its final state, run manifest and store."""
    from bard_core.recipes import load_config
    from bard_pipeline.flows.distill import distill

    state = distill(recipe=recipe, overrides=overrides, return_state=True, **params)
    cfg = load_config(recipe, overrides)
    store = ArtifactStore(cfg.store.root, cfg.store.endpoint_url)
    return state, store.read_run(str(state.state_details.flow_run_id)), store


def statuses(record: dict[str, Any]) -> dict[str, str]:
    return {name: info["status"] for name, info in record["stages"].items()}


def artifact(record: dict[str, Any], stage: str) -> ArtifactRef:
    return ArtifactRef.parse(record["stages"][stage]["artifact"])
