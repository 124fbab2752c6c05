"""Prompt files: every prompt the pipeline sends lives in a file, so it is versioned and fingerprinted.

A prompt reference is either the name of a file shipped in ``bard_core/prompts/`` (``"teacher_user.txt"``)
or a path to a user file. Templates use ``str.format`` fields (``{problem}``); literal braces are doubled.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "prompts"


class PromptError(ValueError):
    """A prompt file is missing, unreadable, or does not fit the values a stage renders into it."""


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded prompt file: its reference, text and content hash (part of stage fingerprints)."""

    ref: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name)

    def require(self, allowed: frozenset[str]) -> PromptTemplate:
        """Fail early (at load, not mid-stage) when the file uses a field the stage does not provide."""
        unknown = self.fields - allowed
        if unknown:
            raise PromptError(
                f"prompt {self.ref!r} uses unknown field(s) {sorted(unknown)}; "
                f"available: {sorted(allowed)}. Fix the placeholder names, or double literal braces as {{{{ }}}}."
            )
        return self

    def render(self, **values: object) -> str:
        try:
            return self.text.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise PromptError(f"prompt {self.ref!r} cannot be rendered: {exc!r}") from exc


def resolve_prompt_path(ref: str) -> Path:
    builtin = BUILTIN_DIR / ref
    if "/" not in ref and builtin.is_file():
        return builtin
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    shipped = sorted(p.name for p in BUILTIN_DIR.glob("*.txt"))
    raise PromptError(
        f"prompt file {ref!r} not found: it is neither a shipped prompt ({', '.join(shipped)}) "
        "nor an existing path. Fix the name or give a path relative to the working directory."
    )


@lru_cache(maxsize=64)
def load_prompt(ref: str) -> PromptTemplate:
    path = resolve_prompt_path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"prompt file {path} is not valid UTF-8 (byte {exc.start}); save it as UTF-8.") from exc
    # The newline every editor puts at the end of a file is not part of the prompt.
    return PromptTemplate(ref=ref, text=text.removesuffix("\n"))
