"""The transformers engine on a tiny random model: shapes, accounting, context checks, stopping."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bard_core.config import HFEngineConfig
from bard_core.engine import ErrorKind, GenerationRequest, SamplingParams
from bard_pipeline.infra.engines.hf import HFEngine, _StopAfterAnswer, answer_complete


def _req(rid: str, content: str, n: int = 1, max_new: int = 24, temperature: float = 0.8) -> GenerationRequest:
    return GenerationRequest(
        rid, [{"role": "user", "content": content}], SamplingParams(n, temperature, 1.0, max_new, 0)
    )


def test_batched_generation_with_samples_and_accounting(toy_model_dir: Path) -> None:
    engine = HFEngine(HFEngineConfig(model="toy", max_batch_size=4), str(toy_model_dir))
    requests = [_req(f"r{i}", f"What is {i} + 1?", n=3) for i in range(5)] + [_req("g", "hi", temperature=0.0)]
    results = engine.generate(requests)
    assert [r.request_id for r in results] == [r.request_id for r in requests]
    for result in results[:5]:
        assert len(result.completions) == 3 and result.prompt_tokens > 5
        for completion in result.completions:
            assert 1 <= completion.completion_tokens <= 24
            assert completion.finish_reason in ("stop", "length")
    assert len({c.text for c in results[0].completions}) > 1  # sampled, not copies
    assert len(results[5].completions) == 1


def test_prompt_longer_than_context_is_rejected_per_row(toy_model_dir: Path) -> None:
    engine = HFEngine(HFEngineConfig(model="toy"), str(toy_model_dir))
    ok, too_long = engine.generate([_req("ok", "short"), _req("long", "word " * 400)])
    assert ok.error is None and ok.completions
    assert too_long.error_kind is ErrorKind.CONTEXT_LENGTH and not too_long.completions
    assert "context is 256" in (too_long.error or "")


def test_stop_after_answer(toy_model_dir: Path) -> None:
    assert answer_complete("<think>\nr\n</think>\n\nThe answer is \\boxed{4}")
    assert not answer_complete("<think>\n\\boxed{4} too early")
    assert not answer_complete("<think>\nr\n</think>\n\nThe answer is \\boxed{4")
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(toy_model_dir)
    text_ids = tokenizer("<think>\nr\n</think>\n\nso \\boxed{4} and more", add_special_tokens=False)["input_ids"]
    stopper = _StopAfterAnswer(tokenizer, prompt_len=2, batch=1)
    states = []
    for step in range(1, len(text_ids) + 1):
        ids = torch.tensor([[0, 0, *text_ids[:step]]])
        states.append(bool(stopper(ids, None)[0]))
    assert not states[0] and states[-1] and states.index(True) < len(states) - 2  # stops right after the box


def test_a_forced_prefix_is_continued_not_restarted(toy_model_dir: Path) -> None:
    engine = HFEngine(HFEngineConfig(model="toy", stop_after_answer=False), str(toy_model_dir))
    plain, forced = engine.generate(
        [_req("plain", "What is 2 + 2?", temperature=0.0), replace(_req("forced", "What is 2 + 2?", temperature=0.0),
                                                                   prefix="<think>\nfour\n</think>\n\n")]
    )  # fmt: skip
    prefix_tokens = len(engine.tokenizer.encode("<think>\nfour\n</think>\n\n", add_special_tokens=False))
    assert forced.prompt_tokens == plain.prompt_tokens + prefix_tokens  # the prefix is prompt, not completion
    assert forced.completions and forced.completions[0].completion_tokens >= 1
