"""The OpenAI-compatible engine against a local HTTP server that injects faults (one layer: the engine)."""

from __future__ import annotations

import time

import pytest

from bard_core.config import OpenAIEngineConfig, PriceConfig
from bard_core.engine import ErrorKind, GenerationRequest, SamplingParams, Usage
from bard_pipeline.infra.engines.budget import BudgetLedger
from bard_pipeline.infra.engines.openai import EngineAuthError, EngineUnavailableError, OpenAIEngine
from tests.conftest import free_port
from tests.support.openai_server import FaultPlan, FaultServer


def _requests(n: int, content: str = "What is 40 + 2?", samples: int = 1) -> list[GenerationRequest]:
    params = SamplingParams(n=samples, max_new_tokens=64)
    return [GenerationRequest(f"q{i}", [{"role": "user", "content": content}], params) for i in range(n)]


def _cfg(url: str, **kw: object) -> OpenAIEngineConfig:
    base = {"model": "fault-model", "base_url": url, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "api_key_env": None}
    return OpenAIEngineConfig(**{**base, **kw})


def test_storm_of_429_and_500_completes_with_retries_counted() -> None:
    plan = FaultPlan(rate_429=0.25, rate_500=0.15, seed=1)
    with FaultServer(plan, free_port()) as server:
        engine = OpenAIEngine(_cfg(server.url, max_concurrency=4, max_retries=12))
        results = engine.generate(_requests(60, samples=2))
    usage = Usage()
    usage.add(results)
    assert all(r.error is None and len(r.completions) == 2 for r in results)
    assert usage.calls == plan.calls == usage.requests + usage.retries
    assert usage.retries == plan.statuses[429] + plan.statuses[500] > 10
    assert usage.completion_tokens == 60 * 24 and usage.prompt_tokens > 0
    assert plan.max_in_flight <= 4


def test_retry_after_is_honoured_and_retries_are_bounded() -> None:
    plan = FaultPlan(rate_429=1.0, retry_after_s=0.2)
    with FaultServer(plan, free_port()) as server:
        engine = OpenAIEngine(_cfg(server.url, max_retries=2))
        t0 = time.perf_counter()
        [result] = engine.generate(_requests(1))
    assert time.perf_counter() - t0 >= 0.4  # two waits of Retry-After, not the 0.05 s backoff cap
    assert result.error_kind is ErrorKind.ENGINE and result.attempts == 3
    assert "gave up after 3 calls" in (result.error or "") and "HTTP 429" in (result.error or "")


def test_slow_responses_time_out_and_are_retried() -> None:
    plan = FaultPlan(rate_slow=0.5, slow_s=2.0, seed=3)
    with FaultServer(plan, free_port()) as server:
        engine = OpenAIEngine(_cfg(server.url, timeout_s=0.5, max_retries=8, max_concurrency=8))
        results = engine.generate(_requests(12))
    assert all(r.error is None for r in results)
    assert sum(r.attempts for r in results) > 12


def test_prompt_longer_than_the_context_is_rejected_per_row() -> None:
    plan = FaultPlan(context_chars=100)
    with FaultServer(plan, free_port()) as server:
        engine = OpenAIEngine(_cfg(server.url))
        results = engine.generate([*_requests(2), *_requests(1, content="x" * 500)])
    assert [r.error_kind for r in results] == [None, None, ErrorKind.CONTEXT_LENGTH]
    assert "maximum context length" in (results[2].error or "") and results[2].attempts == 1


def test_query_budget_is_never_exceeded_even_with_retries_and_concurrency() -> None:
    plan = FaultPlan(rate_500=0.3, seed=5)
    with FaultServer(plan, free_port()) as server:
        ledger = BudgetLedger(max_calls=25, max_usd=None)
        engine = OpenAIEngine(_cfg(server.url, max_concurrency=8), budget=ledger)
        results = engine.generate(_requests(40))
    assert plan.calls == ledger.spent()[0] <= 25
    not_sent = [r for r in results if r.error_kind is ErrorKind.BUDGET]
    assert not_sent and all("query budget exhausted" in (r.error or "") for r in not_sent)
    assert (
        sum(r.error is None for r in results) + len(not_sent) + sum(r.error_kind is ErrorKind.ENGINE for r in results)
        == 40
    )


def test_cost_and_dollar_budget() -> None:
    price = PriceConfig(prompt_usd_per_mtok=1000.0, completion_usd_per_mtok=2000.0)
    with FaultServer(FaultPlan(), free_port()) as server:
        [result] = OpenAIEngine(_cfg(server.url, price=price)).generate(_requests(1))
        assert result.cost_usd == pytest.approx((result.prompt_tokens * 1000 + 12 * 2000) / 1e6)
        ledger = BudgetLedger(max_calls=None, max_usd=0.5)  # worst case per call: (15 + 64) * ... ~ 0.14 $
        results = OpenAIEngine(_cfg(server.url, price=price), budget=ledger).generate(_requests(10))
    assert ledger.spent()[1] <= 0.5
    assert 0 < sum(r.error is None for r in results) < 10


def test_unreachable_endpoint_fails_fast_naming_the_url_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARD_TEST_KEY", "sk-very-secret")
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.perf_counter()
    with pytest.raises(EngineUnavailableError) as info:
        OpenAIEngine(_cfg(url, api_key_env="BARD_TEST_KEY"))
    assert time.perf_counter() - t0 < 10
    assert url in str(info.value) and "sk-very-secret" not in str(info.value) + repr(info.value)


def test_a_key_the_server_refuses_fails_at_start_up_naming_its_variable_not_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong key is refused before any request: the stage fails at once, instead of recording every row as an
    HTTP 401 (the chaos campaign's secrets trial found the run completing that way)."""
    monkeypatch.setenv("BARD_TEST_KEY", "sk-wrong-secret-0123456789")
    monkeypatch.delenv("BARD_TEST_UNSET_KEY", raising=False)
    with FaultServer(FaultPlan(require_key="sk-right"), free_port()) as server:
        with pytest.raises(EngineAuthError) as wrong:
            OpenAIEngine(_cfg(server.url, api_key_env="BARD_TEST_KEY"))
        with pytest.raises(EngineAuthError) as unset:
            OpenAIEngine(_cfg(server.url, api_key_env="BARD_TEST_UNSET_KEY"))
        assert server.plan.calls == 0  # no completion was asked for
    message = str(wrong.value)
    assert f"{server.url}/models" in message and "HTTP 401" in message and "$BARD_TEST_KEY" in message
    assert "sk-wrong-secret-0123456789" not in message + repr(wrong.value)
    assert "$BARD_TEST_UNSET_KEY is empty or unset" in str(unset.value)


def test_a_401_that_quotes_the_key_is_recorded_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key revoked mid-stage: servers and proxies quote the key they were sent in a 401's body; the engine
    records that body as the row's error (traces, logs, the Prefect UI), so it masks its own key in it first."""
    monkeypatch.setenv("BARD_TEST_KEY", "sk-wrong-secret-0123456789")
    plan = FaultPlan(require_key="sk-wrong-secret-0123456789")
    with FaultServer(plan, free_port()) as server:
        engine = OpenAIEngine(_cfg(server.url, api_key_env="BARD_TEST_KEY"))  # accepted at start-up
        plan.require_key = "sk-rotated"
        [result] = engine.generate(_requests(1))
    assert result.error_kind is ErrorKind.ENGINE and result.attempts == 1  # a 401 is not retried
    assert "HTTP 401" in (result.error or "") and "invalid_api_key" in (result.error or "")
    assert "sk-wrong-secret-0123456789" not in (result.error or "")
    assert "[redacted: $BARD_TEST_KEY]" in (result.error or "")
