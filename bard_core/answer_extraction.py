"""Reference answers cut out of a dataset's answer column at ingest (``answer_extractor`` on a source).

Hub datasets often store the worked solution where a grader needs the final answer: ``openai/gsm8k``'s
``answer`` is "… #### 72", MATH-style sets end in ``\\boxed{...}``. Grading against the whole solution
marks every correct sample wrong, so the answer is extracted once, when the problem enters the pipeline.
A row whose answer cannot be extracted is rejected (reason ``answer_extraction_failed``), never kept whole.

Extractors are a registry keyed by ``AnswerExtractor``: a new one is an enum member plus a function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum

from bard_core.grading import extract_boxed

REJECT_REASON = "answer_extraction_failed"


class AnswerExtractor(str, Enum):
    """How a source's reference answer is cut out of its answer column."""

    GSM8K = "gsm8k"  # the text after the last '####', stripped, thousands commas removed
    BOXED = "boxed"  # the content of the last \boxed{...} (braces balanced)
    REGEX = "regex"  # group 1 of the first match of the source's `answer_pattern`


class AnswerExtractionError(ValueError):
    """An answer the configured extractor finds nothing in; the message says what was looked for."""


def _gsm8k(text: str, pattern: re.Pattern[str] | None) -> str:
    _, sep, tail = text.rpartition("####")
    answer = tail.strip().replace(",", "")
    if not sep or not answer:
        raise AnswerExtractionError("no '#### <answer>' line" if not sep else "nothing after the last '####'")
    return answer


def _boxed(text: str, pattern: re.Pattern[str] | None) -> str:
    answer = extract_boxed(text)
    if answer is None or not answer.strip():
        raise AnswerExtractionError("no non-empty \\boxed{...}")
    return answer.strip()


def _regex(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:  # the config refuses regex without a pattern; this guards direct callers
        raise AnswerExtractionError("the regex extractor needs answer_pattern")
    match = pattern.search(text)
    if match is None or match.group(1) is None or not match.group(1).strip():
        raise AnswerExtractionError(f"answer_pattern {pattern.pattern!r} does not match (or group 1 is empty)")
    return match.group(1).strip()


EXTRACTORS: dict[AnswerExtractor, Callable[[str, re.Pattern[str] | None], str]] = {
    AnswerExtractor.GSM8K: _gsm8k,
    AnswerExtractor.BOXED: _boxed,
    AnswerExtractor.REGEX: _regex,
}


def compile_answer_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled ``answer_pattern``; it must compile and have a group 1 (the answer)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"answer_pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.groups < 1:
        raise ValueError(f"answer_pattern {pattern!r} has no group; put the answer in group 1, e.g. 'Answer: (.+)'")
    return compiled


def extract_answer(kind: AnswerExtractor, text: object, pattern: str | None = None) -> str:
    """The reference answer cut out of ``text`` by ``kind``; ``AnswerExtractionError`` when there is none."""
    if text is None:
        raise AnswerExtractionError("the answer is empty")
    return EXTRACTORS[kind](str(text), compile_answer_pattern(pattern) if pattern is not None else None)
