"""`bard serve REF` end to end: a trained toy student behind vLLM's OpenAI server (the CPU build), asked with
the official `openai` client at three budgets and three effort modes; reasoning is counted as the judge
counts it (``counted_text``, the student's tokenizer)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bard_core.metrics import spearman
from bard_pipeline.chaos.drivers import copy_stages
from tests.conftest import REPO, SmokeRun, free_port
from tests.support.benchmarks import last_line_figures
from tests.support.flows import artifact, run_flow

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
BUDGETS = (16, 32, 64)
EFFORTS = ("low", "medium", "high")
# Steps the 2-layer, 64-wide student trains: the smoke recipe's 20 leave it ignoring the prompt.
SFT_STEPS = 600
SFT_LEARNING_RATE = 2e-3
SHARED_STAGES = ("tokenizer", "model", "ingest", "sample", "compress")


@dataclass(frozen=True)
class Served:
    url: str
    process: subprocess.Popen[bytes]
    model_dir: Path
    held_out: list[str]
    store_url: str
    model_key: str


@pytest.fixture(scope="module")
def served(
    prefect_api: None, vllm_python: Path, smoke_run: SmokeRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The smoke recipe through sft only (modes low/medium/high as the tiers 16/32/64), served by the real
    `bard serve` command in its own session; stopped by its PID. The stages up to compress are the session smoke
    run's (same fingerprints: copied, then skipped); the modes change materialize and what follows."""
    root = tmp_path_factory.mktemp("serve")
    copy_stages(smoke_run.root / "store", root / "store", SHARED_STAGES)
    modes = "{low: {tier_tokens: 16}, medium: {tier_tokens: 32}, high: {tier_tokens: 64}}"
    overrides = [f"store.root=file://{root}/store", f"sft.trl.max_steps={SFT_STEPS}",
                 f"sft.trl.learning_rate={SFT_LEARNING_RATE}", f"budget.modes={modes}"]  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BARD_CACHE_DIR", str(root / "cache"))
        _, record, store = run_flow(overrides, until="sft")
    model = artifact(record, "sft")
    problems = store.read_table(artifact(record, "ingest"), "problems").to_pylist()
    held_out = sorted((r for r in problems if r["split"] == "test"), key=lambda r: r["problem_id"])[:6]
    port, export = free_port(), root / "export"
    command = [sys.executable, "-m", "bard_pipeline.flows.cli", "serve", model.key, "--store", f"file://{root}/store",
               "--port", str(port), "--served-model-name", "toy", "--max-model-len", "640", "--export-dir", str(export),
               "--vllm-python", str(vllm_python)]  # fmt: skip
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process, log)
        yield Served(f"{url}/v1", process, export, [r["problem"] for r in held_out], f"file://{root}/store", model.key)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)  # `bard serve` stops vLLM's process group itself
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"bard serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"bard serve did not become healthy:\n{log.read_text()[-3000:]}")


def _reasoning_lengths(
    served: Served, enforce: bool, budget: int | None = None, effort: str | None = None
) -> list[int]:
    from openai import OpenAI
    from transformers import AutoTokenizer

    from bard_core.judge import counted_text

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    client = OpenAI(base_url=served.url, api_key="unused")
    lengths = []
    for problem in served.held_out:
        extra: dict[str, Any] = {"bard_enforce": enforce}
        if budget is not None:
            extra["chat_template_kwargs"] = {"thinking_budget": budget}
        kwargs = {"reasoning_effort": effort} if effort else {}
        response = client.chat.completions.create(
            model="toy", messages=[{"role": "user", "content": problem}], max_tokens=200, temperature=0.0,
            extra_body=extra, **kwargs,
        )  # fmt: skip
        text = response.choices[0].message.content or ""
        lengths.append(len(tokenizer.encode(counted_text(text), add_special_tokens=False)))
    return lengths


def test_enforced_reasoning_stays_within_the_bound_and_follows_the_request(served: Served) -> None:
    from bard_core.chat_contract import BudgetContract

    contract = BudgetContract.from_json(json.loads((served.model_dir / "bard_budget.json").read_text()))
    means: dict[str, list[float]] = {"budget": [], "effort": []}
    for budget, effort in zip(BUDGETS, EFFORTS, strict=True):
        for kind, lengths in (
            ("budget", _reasoning_lengths(served, True, budget=budget)),
            ("effort", _reasoning_lengths(served, True, effort=effort)),
        ):
            bound = contract.upper_bound_tokens(budget)
            assert bound is not None and max(lengths) <= bound, (kind, budget, lengths, bound)
            means[kind].append(statistics.mean(lengths))
    assert spearman(list(BUDGETS), means["budget"]) == pytest.approx(1.0), means
    assert spearman([1, 2, 3], means["effort"]) == pytest.approx(1.0), means
    # a tier mode renders the tier's prompt, so greedy answers are the same
    assert means["budget"] == means["effort"]


def test_unenforced_requests_are_left_to_the_student(served: Served) -> None:
    """No thinking_token_budget is added when the request turns enforcement off: at the smallest budget the
    reasoning is then at least as long as enforced (the student alone overshoots it). The unenforced means
    are printed (-s): whether they follow the budget is the training's doing, not the server's."""
    free = {budget: _reasoning_lengths(served, False, budget=budget) for budget in BUDGETS}
    forced = _reasoning_lengths(served, True, budget=BUDGETS[0])
    assert statistics.mean(free[BUDGETS[0]]) >= statistics.mean(forced)
    means = [statistics.mean(free[b]) for b in BUDGETS]
    print(f"unenforced mean reasoning tokens {dict(zip(BUDGETS, means, strict=True))}, "
          f"spearman {spearman(list(BUDGETS), means)}")  # fmt: skip


def test_the_serve_fidelity_benchmark_runs_at_its_smallest_size(served: Served, vllm_python: Path) -> None:
    """benchmarks/serve_fidelity.py on the same stored student (its own server): the last line carries the
    served and forced figures, and forcing leaves nothing over budget."""
    command = [sys.executable, str(REPO / "benchmarks" / "serve_fidelity.py"), served.model_key, "--store",
               served.store_url, "--limit", "2", "--port", str(free_port()), "--max-model-len", "640",
               "--vllm-python", str(vllm_python)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_line_figures(done.stdout)
    assert {"served_over_budget", "enforced_over_budget", "served_within", "enforced_within"} <= set(figures)
    assert figures["enforced_over_budget"] == 0.0


def test_sigterm_stops_the_server(served: Served) -> None:
    os.kill(served.process.pid, signal.SIGTERM)
    assert served.process.wait(60) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(served.url.removesuffix("/v1") + "/health", timeout=2)
