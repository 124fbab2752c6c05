"""Mean token entropy from the transformers engine, on the tiny random model: present only when asked, exact
(the entropy of the very scores generate sampled from), sharper at a low temperature, and free of side
effects on what is generated."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bard_core.config import HFEngineConfig
from bard_core.engine import GenerationRequest, SamplingParams
from bard_pipeline.infra.engines.hf import HFEngine

PROMPTS = [f"What is {i} + {i + 2}?" for i in range(4)]


@pytest.fixture(scope="module")
def engine(toy_model_dir: Path) -> HFEngine:
    # stop_after_answer off would let every sequence run to max_new; on (the default) sequences end at
    # different steps, which is what the "own tokens only" accounting must get right.
    return HFEngine(HFEngineConfig(model="toy", max_batch_size=8), str(toy_model_dir))


def _requests(temperature: float, entropy: bool, n: int = 2, max_new: int = 24) -> list[GenerationRequest]:
    params = SamplingParams(n, temperature, 1.0, max_new, 7, token_entropy=entropy)
    return [GenerationRequest(f"p{i}", [{"role": "user", "content": p}], params) for i, p in enumerate(PROMPTS)]


def _entropies(engine: HFEngine, temperature: float) -> list[float]:
    values = [c.mean_token_entropy for r in engine.generate(_requests(temperature, True)) for c in r.completions]
    assert all(v is not None for v in values)
    return [v for v in values if v is not None]


def test_entropy_is_measured_when_asked_and_is_lower_at_a_low_temperature(engine: HFEngine) -> None:
    cold, hot = _entropies(engine, 0.3), _entropies(engine, 1.5)
    ceiling = math.log(len(engine.tokenizer))  # no distribution over the vocabulary has more entropy
    for value in cold + hot:
        assert math.isfinite(value) and 0 < value <= ceiling
    assert sum(cold) / len(cold) < sum(hot) / len(hot)


def test_not_asked_means_none_and_asking_does_not_change_the_samples(engine: HFEngine) -> None:
    plain = engine.generate(_requests(0.9, False))
    measured = engine.generate(_requests(0.9, True))
    assert all(c.mean_token_entropy is None for r in plain for c in r.completions)
    assert [c.text for r in plain for c in r.completions] == [c.text for r in measured for c in r.completions]
    assert [c.completion_tokens for r in plain for c in r.completions] == [
        c.completion_tokens for r in measured for c in r.completions
    ]


def test_only_the_asking_requests_of_a_mixed_batch_get_entropy(engine: HFEngine) -> None:
    asking, silent = _requests(0.9, True)[:2], _requests(0.9, False)[2:]
    results = engine.generate([*asking, *silent])
    assert all(c.mean_token_entropy is not None for r in results[:2] for c in r.completions)
    assert all(c.mean_token_entropy is None for r in results[2:] for c in r.completions)


def test_greedy_reports_the_models_own_entropy(engine: HFEngine) -> None:
    (result,) = engine.generate(_requests(0.0, True, n=1)[:1])
    value = result.completions[0].mean_token_entropy
    assert value is not None and math.isfinite(value) and value > 0


def test_step_entropy_is_that_of_the_scores_sampled_from_and_frees_them() -> None:
    import torch

    from bard_pipeline.infra.engines.hf import _TokenEntropy

    inf = float("inf")
    # Row 0: two tokens left by top-k/top-p (the rest -inf), equally likely; row 1: four, equally likely.
    scores = torch.tensor([[0.5, 0.5, -inf, -inf, -inf], [1.0, 1.0, 1.0, 1.0, -inf]])
    criterion = _TokenEntropy()
    stop = criterion(torch.zeros(2, 3, dtype=torch.long), (scores,))
    assert stop.tolist() == [False, False]  # measures, never stops
    assert scores.numel() == 0  # the step's scores were released
    (row0,), (row1,) = criterion.per_sequence()
    assert row0 == pytest.approx(math.log(2)) and row1 == pytest.approx(math.log(4))


def test_the_mean_covers_each_sequences_own_tokens_only(engine: HFEngine) -> None:
    eos, pad = engine.tokenizer.eos_token_id, engine.tokenizer.pad_token_id
    word = engine.tokenizer.encode("4", add_special_tokens=False)[0]
    # Two own tokens, the EOS that ended the sequence (counted, as in completion_tokens), then padding
    # generated while the batch's other sequences ran on (not this sequence's: left out).
    completion = engine._completion([word, word, eos, pad, pad], 5, [1.0, 2.0, 3.0, 50.0, 50.0])
    assert completion.completion_tokens == 3 and completion.mean_token_entropy == pytest.approx(2.0)
    assert engine._completion([word, word], 5, None).mean_token_entropy is None


def test_vllm_top_logprobs_entropy_is_the_renormalised_tempered_top_k() -> None:
    from bard_pipeline.infra.engines.vllm import top_logprobs_entropy

    uniform = [math.log(1 / 50)] * 20  # a flat model distribution: only its top 20 are seen
    assert top_logprobs_entropy(uniform, 1.0, 1.0) == pytest.approx(math.log(20))  # the k-token ceiling
    peaked = [-0.1, -2.5, -3.0, -4.0, -6.0]
    cold, warm, hot = (top_logprobs_entropy(peaked, t, 1.0) for t in (0.3, 1.0, 1.5))
    assert 0 < cold < warm < hot <= math.log(len(peaked))
    assert top_logprobs_entropy(peaked, 0.0, 1.0) == pytest.approx(warm)  # greedy: the model's own (T=1)
    assert top_logprobs_entropy(peaked, 1.0, 0.5) == 0.0  # the nucleus of the top token alone


# Runs in the vLLM environment: one engine, the same prompts without and with entropy, cold and hot.
_VLLM_DRIVER = """
import json, sys
from bard_core.config import VLLMEngineConfig
from bard_core.engine import GenerationRequest, SamplingParams
from bard_pipeline.infra.engines.vllm import VLLMEngine

cfg = VLLMEngineConfig(model="toy", dtype="float32", max_model_len=256, enforce_eager=True, batches_in_flight=1)
engine = VLLMEngine(cfg, sys.argv[1])
def run(temperature, entropy):
    params = SamplingParams(2, temperature, 1.0, 24, 3, token_entropy=entropy)
    messages = [[{"role": "user", "content": f"What is {i} + 2?"}] for i in range(4)]
    requests = [GenerationRequest(f"p{i}", m, params) for i, m in enumerate(messages)]
    return [[c.text, c.mean_token_entropy] for r in engine.generate(requests) for c in r.completions]
out = {"plain": run(0.3, False), "cold": run(0.3, True), "hot": run(1.5, True)}
engine.close()
print("RESULT " + json.dumps(out))
"""


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_engine_entropy_when_asked_without_changing_samples(vllm_python: Path, toy_model_dir: Path) -> None:
    import json
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run(
        [str(vllm_python), "-c", _VLLM_DRIVER, str(toy_model_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert all(entropy is None for _, entropy in out["plain"])
    assert [text for text, _ in out["plain"]] == [text for text, _ in out["cold"]]  # logprobs change nothing
    cold, hot = ([e for _, e in out[k]] for k in ("cold", "hot"))
    assert all(e is not None and 0 < e <= math.log(21) for e in cold + hot)  # top-20, plus the sampled token
    assert sum(cold) / len(cold) < sum(hot) / len(hot)
