"""BRIDGE end to end on the smoke recipe: select → sample (the chosen few) → assistant → amplify → compress →
materialize, on a real Prefect API, real Ray (engine actors, Ray Train) and a real store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from bard_core import schemas
from tests.support.flows import artifact, run_flow, statuses

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
BUDGET_REQUESTS = 7
BRIDGE = [
    "models.toy-ta={kind: toy_pretrained, hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64, "
    "max_position_embeddings: 640, steps: 2, corpus_problems: 20}",
    "bridge.enabled=true",
    "bridge.assistant=toy-ta",
    f"bridge.teacher_budget={{requests: {BUDGET_REQUESTS}}}",
    "bridge.scoring={samples: 2, sampling: {temperature: 1.0, max_new_tokens: 24}, pool: 30}",
    "bridge.sft={trl: {max_steps: 2, per_device_train_batch_size: 4, learning_rate: 1.0e-3, logging_steps: 1}, "
    "max_length_tokens: 640, resources: {workers: 1, cpus_per_worker: 2, checkpoint_every_steps: 10}, "
    "probe: {problems: 0}}",
    "bridge.amplify={n_samples: 1, sampling: {temperature: 0.7, max_new_tokens: 24}}",
    "bridge.resources={replicas: 1, cpus_per_replica: 1.0, batch_size: 64}",
]
BRIDGE_STAGES = ["select", "sample", "assistant", "amplify", "compress", "materialize"]


def test_a_tiny_assistant_scores_asks_within_budget_and_honestly_amplifies_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The real HF path: the TA (two pretraining steps) scores, is fine-tuned and amplifies; it solves nothing,
    which ends in an empty amplification with its reason, and the teacher's few traces still go on."""
    overrides = [f"store.root=file://{tmp_path}/store", *BRIDGE, "bridge.engine={kind: hf, model: toy-ta}"]
    state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    assert all(statuses(record)[s] == "executed" for s in BRIDGE_STAGES)
    assert "LOAD_FAST" not in capfd.readouterr().err  # the TA's in-process pretraining keeps library chatter out

    select = store.manifest(artifact(record, "select"))
    assert select.stats["teacher_budget"] == BUDGET_REQUESTS == select.stats["chosen"]
    selection = store.read_table(artifact(record, "select"), "selection")
    assert selection.num_rows == select.stats["problems"] and pc.sum(selection.column("scored")).as_py() == 30
    chosen = set(selection.filter(selection.column("chosen")).column("problem_id").to_pylist())
    scored = set(selection.filter(selection.column("scored")).column("problem_id").to_pylist())
    assert len(chosen) == BUDGET_REQUESTS and chosen <= scored  # the choice is made within the scored pool
    assert selection.filter(selection.column("scored")).column("difficulty").null_count == 0
    assert any(f.name.startswith("plots/selection") for f in select.files)

    sample = store.manifest(artifact(record, "sample"))
    assert sample.usage["calls"] <= BUDGET_REQUESTS  # the engine's own count, not the config
    traces = store.read_table(artifact(record, "sample"), "traces")
    assert set(traces.column("problem_id").to_pylist()) == chosen
    assert set(traces.column("author").to_pylist()) == {"teacher"}

    amplify = store.manifest(artifact(record, "amplify"))
    assert amplify.stats["assistant"]["problems"] == select.stats["problems"] - BUDGET_REQUESTS
    assert amplify.stats["assistant"]["problems_with_gold"] == 0
    assert "solved none" in amplify.stats["empty_reason"]
    amplified = store.read_table(artifact(record, "amplify"), "traces")
    assert Counter(amplified.column("author").to_pylist()) == {
        "teacher": traces.num_rows,
        "assistant": select.stats["problems"] - BUDGET_REQUESTS,
    }
    compress = store.manifest(artifact(record, "compress"))
    assert compress.inputs["traces"] == record["stages"]["amplify"]["artifact"]
    assert store.manifest(artifact(record, "materialize")).stats["problems"] <= BUDGET_REQUESTS


def test_amplified_traces_flow_through_compress_and_materialize_with_their_author(tmp_path: Path) -> None:
    """A TA that does solve problems (the oracle as the TA engine): its gold traces are compressed and become
    training records like the teacher's, and the dataset covers far more problems than the teacher answered."""
    overrides = [
        f"store.root=file://{tmp_path}/store",
        *BRIDGE,
        "bridge.selector=random",  # no scoring: the oracle has no samples worth scoring
        "bridge.engine={kind: oracle, model: toy-ta, error_rate: 0.3}",
        "bridge.amplify.sampling.max_new_tokens=1024",  # the oracle writes full-length traces
    ]
    state, record, store = run_flow(overrides, until="materialize")
    assert state.is_completed(), state.message
    amplified = store.read_table(artifact(record, "amplify"), "traces")
    gold = amplified.filter(pc.and_(amplified.column("is_gold"), amplified.column("correct")))
    authors = dict(zip(gold.column("problem_id").to_pylist(), gold.column("author").to_pylist(), strict=True))
    assert list(authors.values()).count("teacher") <= BUDGET_REQUESTS
    assert list(authors.values()).count("assistant") > 5 * BUDGET_REQUESTS
    assert store.manifest(artifact(record, "amplify")).stats["assistant"]["accuracy"] < 0.9  # graded, not trusted

    tiers = store.read_table(artifact(record, "compress"), "tiers")
    compressed = set(tiers.filter(tiers.column("valid")).column("problem_id").to_pylist())
    assert {p for p, a in authors.items() if a == "assistant"} & compressed  # TA traces were compressed
    dataset = artifact(record, "materialize")
    records = store.read_table(dataset, "sft_train")
    problems = set(records.column("problem_id").to_pylist())
    assert len(problems) > 5 * BUDGET_REQUESTS and problems <= set(authors)
    schemas.conform(records, schemas.SFT, "sft_train", "test")  # the same contract as a BARD dataset
