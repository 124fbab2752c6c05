"""The oracle engine: teacher traces grade as the reference says; compressions aim at the budget."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from bard_core.budget import BudgetSpec, HFTokenCounter, parse_think
from bard_core.config import OracleEngineConfig, PriceConfig
from bard_core.engine import GenerationRequest, SamplingParams, Usage, message_chars, worst_case_request_usd
from bard_core.grading import grade
from bard_core.prompting import load_prompt
from bard_core.sampling import TEACHER_FIELDS, TeacherPrompt, teacher_requests
from bard_core.toy.oracle import OracleEngine, OracleSettings, oracle_token_count
from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer
from bard_core.toy.world import ToyFamily, solve, toy_rows

FAMILIES = [(f, 1.0, {}) for f in ToyFamily if not f.is_lab]  # lab families: tests/bard_core/test_lab.py


@lru_cache(maxsize=1)
def counter() -> HFTokenCounter:
    corpus = toy_corpus(40, 99, [16, 32, 64, 128], load_prompt("budget_user.txt"))
    return HFTokenCounter(train_toy_tokenizer(corpus, 512))


def _teacher(rows, engine: OracleEngine, n: int = 1):  # type: ignore[no-untyped-def]
    requests = [
        GenerationRequest(r.problem_id, [], SamplingParams(n=n), {"role": "teacher", "problem_meta": r.meta})
        for r in rows
    ]
    return engine.generate(requests)


def test_programs_solve_every_family() -> None:
    rows = toy_rows(60, 11, FAMILIES)
    assert {r.source for r in rows} == {f"toy/{f.value}" for f in ToyFamily if not f.is_lab}
    assert all(str(solve(r.meta).value) == r.answer for r in rows)


def test_error_free_teacher_traces_grade_correct_and_slips_grade_wrong() -> None:
    rows = toy_rows(45, 12, FAMILIES)
    for error_rate, expected in ((0.0, True), (1.0, False)):
        results = _teacher(rows, OracleEngine(OracleSettings(error_rate=error_rate)))
        for row, result in zip(rows, results, strict=True):
            think = parse_think(result.completions[0].text)
            assert think.closed and think.reasoning
            assert grade(think.final, row.answer, "reasoning_gym", row.meta).correct is expected


def test_teacher_is_long_redundant_and_deterministic_per_seed() -> None:
    rows = toy_rows(30, 13, FAMILIES)
    engine = OracleEngine(OracleSettings(error_rate=0.3))
    first, again = _teacher(rows, engine, n=4), _teacher(rows, engine, n=4)
    assert [c.text for r in first for c in r.completions] == [c.text for r in again for c in r.completions]
    texts = [c.text for r in first for c in r.completions]
    assert len(set(texts)) > len(rows)  # samples of one problem differ
    lengths = counter().count_many([parse_think(t).reasoning or "" for t in texts])
    assert min(lengths) > 60 and sum(lengths) / len(lengths) > 120
    assert any("double-check" in t for t in texts)
    accuracy = sum(
        grade(parse_think(t).final, rows[i // 4].answer, "reasoning_gym", rows[i // 4].meta).correct
        for i, t in enumerate(texts)
    ) / len(texts)
    assert 0.5 < accuracy < 0.95  # error_rate 0.3 -> some samples wrong, most right


def test_max_new_tokens_truncates_with_length_finish_reason() -> None:
    row = toy_rows(1, 14, FAMILIES)[0]
    request = GenerationRequest(
        "x", [], SamplingParams(max_new_tokens=10), {"role": "teacher", "problem_meta": row.meta}
    )
    completion = OracleEngine().generate([request])[0].completions[0]
    assert completion.finish_reason == "length" and completion.completion_tokens == 10
    assert not parse_think(completion.text).closed


def test_non_toy_requests_get_an_error_result_not_an_exception() -> None:
    result = OracleEngine().generate([GenerationRequest("q", [{"role": "user", "content": "hi"}], SamplingParams())])[0]
    assert result.error and "toy-world problems only" in result.error and result.completions == ()


@pytest.mark.parametrize("budget", [32, 64])
def test_compressor_aims_at_the_budget_and_feedback_helps(budget: int) -> None:
    rows = toy_rows(60, 15, FAMILIES)
    spec = BudgetSpec((16, 32, 64, 128), tolerance=0.25)
    engine = OracleEngine(OracleSettings(answer_drop_rate=0.0))
    hits_first, hits_second = 0, 0
    for row in rows:
        meta = {"role": "compressor", "problem_meta": row.meta, "budget_tokens": budget}
        text = (
            engine.generate([GenerationRequest(f"{row.problem_id}#0", [], SamplingParams(), meta)])[0]
            .completions[0]
            .text
        )
        reasoning = parse_think(text).reasoning or ""
        length = counter().count_many([reasoning])[0]
        hits_first += spec.within(length, budget)
        reason = "too_long" if length > budget else "too_short"
        previous = {"reasoning": reasoning, "measured_tokens": length, "reason": reason}
        retry = engine.generate(
            [GenerationRequest(f"{row.problem_id}#1", [], SamplingParams(), {**meta, "previous": previous})]
        )
        second = counter().count_many([parse_think(retry[0].completions[0].text).reasoning or ""])[0]
        hits_second += spec.within(length, budget) or spec.within(second, budget)
        assert grade(parse_think(text).final, row.answer, "reasoning_gym", row.meta).correct
    assert 0.1 < hits_first / len(rows) < 0.95  # it misses sometimes...
    assert hits_second > hits_first  # ...and the measured length in the feedback helps


PRICE = PriceConfig(prompt_usd_per_mtok=3.0, completion_usd_per_mtok=15.0)


def _priced_requests(rows, n: int, max_new_tokens: int) -> list[GenerationRequest]:  # type: ignore[no-untyped-def]
    """The teacher's real prompts (the sample stage's template), so prompt tokens and characters are real."""
    prompt = TeacherPrompt(load_prompt("teacher_user.txt").require(TEACHER_FIELDS))
    problems = [{"problem_id": r.problem_id, "problem": r.problem, "meta": json.dumps(r.meta)} for r in rows]
    return teacher_requests(problems, prompt, SamplingParams(n=n, max_new_tokens=max_new_tokens))


def test_a_priced_oracle_charges_its_own_token_counts_at_the_price() -> None:
    rows = toy_rows(12, 21, FAMILIES)
    requests = _priced_requests(rows, n=3, max_new_tokens=4096)
    priced = OracleEngine(OracleSettings(price=PRICE)).generate(requests)
    free = OracleEngine().generate(requests)
    assert [c.text for r in priced for c in r.completions] == [c.text for r in free for c in r.completions]
    assert all(r.cost_usd == 0.0 for r in free)
    for request, result in zip(requests, priced, strict=True):
        prompt_tokens = sum(oracle_token_count(m["content"]) for m in request.messages)
        completion_tokens = sum(oracle_token_count(c.text) for c in result.completions)
        assert result.prompt_tokens == prompt_tokens > 0
        expected = (prompt_tokens * 3.0 + completion_tokens * 15.0) / 1e6
        assert result.cost_usd == pytest.approx(expected, rel=1e-12) and result.cost_usd > 0
    usage = Usage()
    usage.add(priced)
    assert usage.cost_usd == pytest.approx(sum(r.cost_usd for r in priced))


def test_the_worst_case_bounds_every_real_oracle_request() -> None:
    rows = toy_rows(30, 22, FAMILIES)
    engine = OracleEngine(OracleSettings(price=PRICE))
    for n, max_new_tokens in ((1, 4096), (4, 4096), (2, 40)):  # answers in full, and cut at max_new_tokens
        requests = _priced_requests(rows, n, max_new_tokens)
        for request, result in zip(requests, engine.generate(requests), strict=True):
            bound = worst_case_request_usd(PRICE, message_chars(request.messages), n, max_new_tokens)
            assert 0 < result.cost_usd <= bound
    # Tight where it can be: a prompt of one-character tokens, every sample cut at max_new_tokens.
    assert worst_case_request_usd(PRICE, 1000, 2, 50) == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1e6)
    assert worst_case_request_usd(None, 1000, 2, 50) == 0.0


def test_the_oracle_price_reaches_the_engine_and_leaves_fingerprints_alone() -> None:
    from bard_pipeline.infra.engines import build_engine

    assert "price" not in OracleEngineConfig().fingerprint_dump()  # unpriced: artifacts keep their fingerprints
    assert OracleEngineConfig(price=PRICE).fingerprint_dump()["price"] == PRICE.model_dump()
    engine = build_engine(OracleEngineConfig(price=PRICE))
    assert isinstance(engine, OracleEngine) and engine.settings.price == PRICE
