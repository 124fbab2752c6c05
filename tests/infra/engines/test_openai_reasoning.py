"""Reasoning APIs through the OpenAI engine: the chain of thought that DeepSeek's reasoner and
`vllm serve --reasoning-parser` return apart from the answer becomes the think block the pipeline grades,
and `engine.extra_body` reaches the request (and, on vLLM, the chat template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from bard_core import schemas
from bard_core.budget import HFTokenCounter, parse_think, render_assistant
from bard_core.config import OpenAIEngineConfig, RunConfig
from bard_core.engine import GenerationRequest, SamplingParams
from bard_core.prompting import load_prompt
from bard_core.recipes import ConfigError, load_config
from bard_core.sampling import TeacherPrompt, sample_batch
from bard_pipeline.infra.engines import EngineRuntime, build_engine
from bard_pipeline.infra.engines.openai import OpenAIEngine, completion_text
from bard_pipeline.tasks.sample import trace_stats
from tests.conftest import CONFIGS, free_port
from tests.support.openai_server import CANNED, CANNED_ANSWER, CANNED_REASONING, FaultPlan, FaultServer

R1_API = CONFIGS / "gpu-r1-api-qwen3-8b.yaml"
PROBLEMS = [
    {
        "problem_id": f"p{i}",
        "source": "test",
        "problem": f"What is {40 - i} + {2 + i}?",
        "answer": "42",
        "split": "train",
        "grader": "math",
        "meta": "{}",
    }
    for i in range(4)
]


def _sample_stage(cfg: RunConfig, counter: HFTokenCounter) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sample stage's work on PROBLEMS, as one engine replica does it (SampleJob), and its stats."""
    s, section = cfg.sample.sampling, cfg.sample
    engine = build_engine(section.engine, EngineRuntime())
    params = SamplingParams(section.n_samples, s.temperature, s.top_p, s.max_new_tokens, s.seed)
    system = load_prompt(section.system_prompt) if section.system_prompt else None
    prompt = TeacherPrompt(load_prompt(section.prompt_template), system)
    rows, _ = sample_batch(engine, counter, PROBLEMS, prompt, params, section.selection)
    return trace_stats(pa.Table.from_pylist(rows, schema=schemas.TRACES), len(PROBLEMS)), rows


def test_r1_api_recipe_keeps_gold_traces_from_a_deepseek_reasoner(
    toy_model_dir: Path, monkeypatch: pytest.MonkeyPatch, record_property: Any
) -> None:
    monkeypatch.setenv("TEACHER_API_KEY", "sk-test-only")
    plan = FaultPlan(shape="deepseek")
    with FaultServer(plan, free_port()) as server:
        overrides = [
            f"sample.engine.base_url={server.url}",
            "sample.engine.extra_body={reasoning_effort: high, chat_template_kwargs: {thinking: true}}",
        ]
        stats, rows = _sample_stage(load_config(R1_API, overrides), HFTokenCounter.from_dir(toy_model_dir))
    print(f"gold traces from the deepseek-shaped server: {stats['problems_with_gold']} of {len(PROBLEMS)}: {stats}")
    record_property("gold_traces", stats["problems_with_gold"])
    assert stats["problems_with_gold"] == len(PROBLEMS) > 0  # 0 when only `content` was read
    assert stats["with_think_block"] == stats["samples"] == 2 * len(PROBLEMS) and stats["engine_errors"] == 0
    gold = [r for r in rows if r["is_gold"]]
    assert all(r["reasoning"] == CANNED_REASONING and r["final"] == CANNED_ANSWER for r in gold)
    assert len(plan.bodies) == len(PROBLEMS)
    for body in plan.bodies:
        assert body["reasoning_effort"] == "high" and body["chat_template_kwargs"] == {"thinking": True}
        assert (body["model"], body["n"], body["max_tokens"]) == ("deepseek-reasoner", 2, 16384)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"content": CANNED_ANSWER, "reasoning_content": CANNED_REASONING}, CANNED),  # DeepSeek, vLLM < 0.10
        ({"content": CANNED_ANSWER, "reasoning": f"\n{CANNED_REASONING}\n"}, CANNED),  # newer vLLM
        ({"content": CANNED, "reasoning_content": CANNED_REASONING}, CANNED),  # inline as well: not doubled
        ({"content": None, "reasoning": "I add"}, "<think>\nI add"),  # ran out while thinking: left open
        ({"content": "42", "reasoning_content": None, "reasoning": ""}, "42"),  # no reasoning at all
    ],
)
def test_reasoning_fields_become_one_think_block(message: dict[str, Any], expected: str) -> None:
    text = completion_text(message)
    assert text == expected
    assert text.count("<think>") <= 1 and parse_think(text).closed == ("</think>" in expected)


def test_extra_body_may_not_override_what_the_engine_sets() -> None:
    with pytest.raises(ValueError, match=r"extra_body may not set 'max_tokens'.*sampling\.max_new_tokens"):
        OpenAIEngineConfig(model="m", base_url="http://127.0.0.1:1/v1", extra_body={"max_tokens": 9})
    with pytest.raises(ConfigError, match=r"sample\.engine\.(openai\.)?extra_body: .*may not set 'n'"):
        load_config(R1_API, ["sample.engine.extra_body={n: 8}"])
    # Unset, the field stays out of the fingerprint (old addresses hold); set, it is part of it.
    plain = OpenAIEngineConfig(model="m", base_url="u")
    effort = OpenAIEngineConfig(model="m", base_url="u", extra_body={"reasoning_effort": "low"})
    assert "extra_body" not in plain.fingerprint_dump()
    assert effort.fingerprint_dump()["extra_body"] == {"reasoning_effort": "low"}


REASONING = "Add the numbers."
NOTE = "Think in short steps."  # rendered by the wired model's chat template when passed as a kwarg


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_serve_with_a_reasoning_parser(
    vllm_python: Path, toy_model_dir: Path, tmp_path: Path, record_property: Any
) -> None:
    from tests.support.vllm_serve import vllm_serve
    from tests.support.wired_model import build_wired_model

    build_wired_model(toy_model_dir, f"{REASONING}</think>{CANNED_ANSWER}", tmp_path / "wired")
    flags = ["--served-model-name", "wired", "--reasoning-parser", "deepseek_r1"]
    params = SamplingParams(n=2, temperature=0.6, max_new_tokens=40, seed=1)
    short = SamplingParams(n=1, max_new_tokens=3)
    requests = [
        GenerationRequest("q", [{"role": "user", "content": "What is 40 + 2?"}], params),
        GenerationRequest("cut", [{"role": "user", "content": "What is 40 + 2?"}], short),
    ]
    with vllm_serve(vllm_python, tmp_path / "wired", tmp_path / "serve.log", flags) as url:
        body = {"model": "wired", "messages": requests[0].messages, "max_tokens": 40}
        raw = httpx.post(f"{url}/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]
        base = {"model": "wired", "base_url": url, "api_key_env": None}
        plain = OpenAIEngine(OpenAIEngineConfig(**base)).generate(requests)
        kwargs = {"chat_template_kwargs": {"bard_note": NOTE}}
        noted = OpenAIEngine(OpenAIEngineConfig(**base, extra_body=kwargs)).generate(requests)
        # The r1-api recipe's sample stage against this server: reasoning parser, extra_body and all.
        overrides = [
            f"sample.engine.base_url={url}",
            "sample.engine.model=wired",
            "sample.engine.api_key_env=null",
            "sample.sampling.max_new_tokens=64",  # the wired model's context is 256
            f"sample.engine.extra_body={json.dumps({'chat_template_kwargs': {'bard_note': NOTE}})}",
        ]
        stats, _ = _sample_stage(load_config(R1_API, overrides), HFTokenCounter.from_dir(toy_model_dir))
    # The server really split the reply: the think block below is the engine's rebuild.
    assert (raw.get("reasoning") or raw.get("reasoning_content")) == REASONING and "think>" not in raw["content"]
    for results in (plain, noted):
        full, cut = results
        assert full.error is None and cut.error is None
        assert [c.text for c in full.completions] == [render_assistant(REASONING, CANNED_ANSWER)] * 2
        assert cut.completions[0].finish_reason == "length" and not parse_think(cut.completions[0].text).closed
        assert cut.completions[0].text.startswith("<think>\n")
    # chat_template_kwargs reached the template: the note's system turn is in the prompt, token for token.
    counter = HFTokenCounter.from_dir(toy_model_dir)
    note_tokens = len(counter.encode(f"<|im_start|>system\n{NOTE}<|im_end|>\n"))
    assert noted[0].prompt_tokens - plain[0].prompt_tokens == note_tokens > 0
    print(f"gold traces from vllm serve --reasoning-parser deepseek_r1: {stats['problems_with_gold']}: {stats}")
    record_property("gold_traces_vllm", stats["problems_with_gold"])
    assert stats["problems_with_gold"] == len(PROBLEMS) and stats["engine_errors"] == 0
