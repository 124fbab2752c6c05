"""Markdown summaries of stage artifacts for the Prefect UI (and `bard artifacts show`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bard_core.manifest import Manifest


def _table(title: str, mapping: Mapping[str, Any]) -> list[str]:
    if not mapping:
        return []
    lines = [f"**{title}**", "", "| key | value |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in mapping.items()]
    return [*lines, ""]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def stage_markdown(manifest: Manifest, uri: str, status: str) -> str:
    stats: dict[str, Any] = {}
    _flatten("", manifest.stats, stats)
    lines = [
        f"### {manifest.stage}: {status}",
        "",
        f"- artifact: `{manifest.stage}/{manifest.fingerprint}`",
        f"- location: `{uri}`",
        f"- created: {manifest.created_at}; inputs: {', '.join(manifest.inputs.values()) or 'none'}",
        "",
    ]
    lines += _table("rows", manifest.rows)
    lines += _table("stats", stats)
    lines += _table("usage", manifest.usage)
    lines += _table("timings (s)", manifest.timings)
    return "\n".join(lines)
