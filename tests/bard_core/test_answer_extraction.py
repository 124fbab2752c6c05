"""Answer extractors: the final answer cut out of a worked solution, and the config that selects one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bard_core.answer_extraction import EXTRACTORS, AnswerExtractionError, AnswerExtractor, extract_answer
from bard_core.config import HFSourceConfig


def test_every_extractor_is_registered() -> None:
    assert set(EXTRACTORS) == set(AnswerExtractor)


@pytest.mark.parametrize(
    ("kind", "text", "pattern", "answer"),
    [
        (AnswerExtractor.GSM8K, "Natalia sold 48/2 = <<48/2=24>>24 clips.\n48+24 = 72\n#### 72", None, "72"),
        (AnswerExtractor.GSM8K, "a #### 3\nthen #### 1,234 ", None, "1234"),  # the last marker wins
        (AnswerExtractor.BOXED, r"so \boxed{3} first, then \boxed{\frac{1}{2}}.", None, r"\frac{1}{2}"),
        (AnswerExtractor.REGEX, "Reasoning...\nThe answer is: 42.", r"answer is:\s*(\d+)", "42"),
    ],
)
def test_extractors_cut_the_final_answer(kind: AnswerExtractor, text: str, pattern: str | None, answer: str) -> None:
    assert extract_answer(kind, text, pattern) == answer


@pytest.mark.parametrize(
    ("kind", "text", "pattern", "why"),
    [
        (AnswerExtractor.GSM8K, "72", None, "no '#### <answer>' line"),
        (AnswerExtractor.GSM8K, "work #### ", None, "nothing after the last '####'"),
        (AnswerExtractor.BOXED, "the answer is 3", None, "no non-empty"),
        (AnswerExtractor.REGEX, "no number here", r"answer is (\d+)", "does not match"),
        (AnswerExtractor.GSM8K, None, None, "empty"),
    ],
)
def test_extractors_say_what_they_did_not_find(
    kind: AnswerExtractor, text: str | None, pattern: str | None, why: str
) -> None:
    with pytest.raises(AnswerExtractionError, match=why):
        extract_answer(kind, text, pattern)


def test_the_hf_source_checks_its_extractor_and_keeps_old_fingerprints() -> None:
    plain = HFSourceConfig(dataset="openai/gsm8k")
    assert "answer_extractor" not in plain.fingerprint_dump() and "answer_pattern" not in plain.fingerprint_dump()
    assert HFSourceConfig(dataset="d", answer_extractor="gsm8k").fingerprint_dump()["answer_extractor"] == "gsm8k"
    with pytest.raises(ValidationError, match="regex needs answer_pattern"):
        HFSourceConfig(dataset="d", answer_extractor="regex")
    with pytest.raises(ValidationError, match="has no group; put the answer in group 1"):
        HFSourceConfig(dataset="d", answer_extractor="regex", answer_pattern=r"answer \d+")
    with pytest.raises(ValidationError, match="is not a valid regular expression"):
        HFSourceConfig(dataset="d", answer_extractor="regex", answer_pattern="(")
    with pytest.raises(ValidationError, match="only read by answer_extractor: regex"):
        HFSourceConfig(dataset="d", answer_extractor="gsm8k", answer_pattern="(.+)")
    with pytest.raises(ValidationError, match="'gsm8k', 'boxed' or 'regex'"):
        HFSourceConfig(dataset="d", answer_extractor="last_number")
