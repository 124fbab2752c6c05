"""Compression validation and retries, with a scripted engine (a unit test of this layer only)."""

from __future__ import annotations

from collections.abc import Sequence

from bard_core.budget import BudgetSpec
from bard_core.compression import CompressionJob, CompressorPrompts, compress_batch, jobs_for
from bard_core.engine import Completion, GenerationRequest, GenerationResult, SamplingParams
from bard_core.prompting import load_prompt

SPEC = BudgetSpec((4, 8, 16), tolerance=0.25)
PROMPTS = CompressorPrompts(
    load_prompt("compress_system.txt"), load_prompt("compress_user.txt"), load_prompt("compress_feedback.txt")
)


class WordCounter:
    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


class ScriptedEngine:
    """Replies from a script per job (keyed by request id prefix); records every request."""

    model = "scripted"
    backend = "scripted replies"

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for request in requests:
            self.requests.append(request)
            key, attempt = request.request_id.split("#")
            replies = self.script[key]
            if replies[int(attempt)] == "ERROR":
                out.append(GenerationResult(request.request_id, (), 5, error="HTTP 500"))
                continue
            out.append(GenerationResult(request.request_id, (Completion(replies[int(attempt)], "stop", 3),), 5))
        return out

    def close(self) -> None:
        pass


def _job(pid: str, budget: int) -> CompressionJob:
    return CompressionJob(pid, "What is 1+1?", "2", "math", {}, "long reasoning " * 10, "\\boxed{2}", 20, budget)


def _out(words: int, answer: str = "2") -> str:
    return "<think>\n" + " ".join(["w"] * words) + f"\n</think>\n\nThe answer is \\boxed{{{answer}}}."


def test_valid_first_try_retry_with_feedback_and_rejections() -> None:
    engine = ScriptedEngine(
        {
            "ok@8": [_out(8)],
            "retry@8": [_out(15), _out(9)],
            "short@8": [_out(2), _out(3), _out(1)],
            "lost@4": [_out(4, "3"), _out(4, "5"), _out(4, "7")],
            "garbled@4": ["no think tags", "still none", "<think>\nw w w"],
            "error@4": ["ERROR", "ERROR", "ERROR"],
        }
    )
    jobs = [_job(key.split("@")[0], int(key.split("@")[1])) for key in engine.script]
    rows, usage = compress_batch(engine, WordCounter(), jobs, PROMPTS, SPEC, SamplingParams(), max_attempts=3)
    by_id = {r["problem_id"]: r for r in rows}
    assert (by_id["ok"]["valid"], by_id["ok"]["attempts"], by_id["ok"]["reasoning_tokens"]) == (True, 1, 8)
    assert (by_id["retry"]["valid"], by_id["retry"]["attempts"]) == (True, 2)
    assert (by_id["short"]["valid"], by_id["short"]["reject_reason"], by_id["short"]["attempts"]) == (
        False,
        "too_short",
        3,
    )
    assert (by_id["lost"]["reject_reason"], by_id["lost"]["answer_kept"]) == ("answer_lost", False)
    assert by_id["garbled"]["reject_reason"] == "unparseable"
    assert by_id["error"]["reject_reason"] == "engine_error: HTTP 500"
    assert usage.requests == 1 + 2 + 3 + 3 + 3 + 3 and usage.failed_requests == 3
    # The retry carries the previous attempt and feedback naming its measured length and the problem.
    retry = next(r for r in engine.requests if r.request_id == "retry@8#1")
    assert retry.messages[-2] == {"role": "assistant", "content": _out(15)}
    assert "had 15 tokens" in retry.messages[-1]["content"] and "too long" in retry.messages[-1]["content"]
    assert "accepted range is 6 to 10" in retry.messages[-1]["content"]
    assert retry.metadata["previous"]["measured_tokens"] == 15


def test_jobs_cover_every_tier_below_the_gold_length() -> None:
    problems = {"p": {"problem": "q", "answer": "2", "grader": "math", "meta": "{}"}}
    gold = [{"problem_id": "p", "reasoning": "r", "final": "f", "reasoning_tokens": 9}]
    assert [j.budget_tokens for j in jobs_for(gold, problems, SPEC)] == [4, 8]
