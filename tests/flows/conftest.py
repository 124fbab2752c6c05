"""Fixtures of the flow tests (the shared smoke run is in tests/conftest.py: the benchmark tests read it too)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.hub import TOKEN, RecordingHfApi


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """HfApi replaced by the recorder, with a token in the environment; the calls made, in order."""
    import huggingface_hub

    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return RecordingHfApi.calls
