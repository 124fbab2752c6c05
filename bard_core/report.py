"""The evaluation report: one self-contained HTML file (plots inlined) and the same tables in markdown.

Tables list every (series, benchmark, budget) with accuracy and its confidence interval, length statistics
and budget fidelity; a comparison report puts two evaluations side by side with their differences.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bard_core.plots import series_label
from bard_core.schemas import EvalMode

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (metric key, header, format)
    ("accuracy", "accuracy", "pct"),
    ("ci", "95% CI", "ci"),
    ("mean_reasoning_tokens", "mean tokens", "f1"),
    ("median_reasoning_tokens", "median tokens", "f1"),
    ("mean_relative_deviation", "rel. deviation", "f3"),
    ("within_tolerance", "within tol.", "pct"),
    ("over_budget", "over budget", "pct"),
    ("leak_rate", "leaked", "pct"),  # answer past </think> longer than budget.leak_answer_tokens
    ("mean_answer_tokens", "answer tokens", "f1"),
    ("tokens_saved", "tokens saved", "pct"),
    ("unparsed", "unparsed", "int"),
    ("generations", "n", "int"),
)


def _fmt(value: Any, kind: str, row: Mapping[str, Any]) -> str:
    if kind == "ci":
        low, high = row["accuracy_ci_low"], row["accuracy_ci_high"]
        return "–" if _missing(low) else f"[{100 * low:.1f}, {100 * high:.1f}]"
    if _missing(value):
        return "–"
    return {"pct": f"{100 * value:.1f}%", "f1": f"{value:.1f}", "f3": f"{value:.3f}", "int": f"{int(value)}"}[kind]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ordered(metrics: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(metrics, key=lambda m: (m["benchmark"], series_label(m), int(m["budget_tokens"])))


def metrics_table_rows(metrics: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Header row, then one row per metrics entry: what both the markdown and the HTML tables show."""
    header = ["benchmark", "series", "budget", *(title for _, title, _ in COLUMNS)]
    body = [
        [m["benchmark"], series_label(m), str(m["budget_tokens"]), *(_fmt(m.get(k), f, m) for k, _, f in COLUMNS)]
        for m in _ordered(metrics)
        if m["mode"] not in _APART
    ]
    return [header, *body]


_APART = (EvalMode.UNCONSTRAINED, EvalMode.EFFORT)  # the reference note and the effort-mode table show these

MODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mean_reasoning_tokens", "mean tokens", "f1"),
    ("token_reduction", "token reduction vs high", "pct"),
    ("accuracy", "accuracy", "pct"),
    ("ci", "95% CI", "ci"),
    ("accuracy_change", "Δ accuracy vs high", "pt"),
    ("change_ci", "Δ 95% CI (paired)", "change_ci"),
    ("paired_problems", "paired problems", "int"),
    ("generations", "n", "int"),
)


def _mode_fmt(value: Any, kind: str, row: Mapping[str, Any]) -> str:
    if kind == "change_ci":
        low, high = row["accuracy_change_ci_low"], row["accuracy_change_ci_high"]
        return "–" if _missing(low) else f"[{100 * low:+.1f}, {100 * high:+.1f}] pt"
    if kind == "pt":
        return "–" if _missing(value) else f"{100 * value:+.1f} pt"
    return _fmt(value, kind, row)


def mode_table_rows(modes: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Header row, then one row per (benchmark, model, effort mode) of ``schemas.MODES``."""
    header = ["benchmark", "model", "mode", "kind", *(title for _, title, _ in MODE_COLUMNS)]
    body = [
        [
            m["benchmark"],
            m["model"],
            m["effort"],
            f"tier {m['tier_tokens']}" if m.get("tier_tokens") is not None else f"share {m['share']:g}",
            *(_mode_fmt(m.get(k), f, m) for k, _, f in MODE_COLUMNS),
        ]
        for m in sorted(modes, key=lambda m: (m["benchmark"], m["model"]))  # stable: modes keep their order
    ]
    return [header, *body]


MODES_NOTE = (
    "Per effort mode (`budget.modes`): a tier mode is its tier's budget rows, a share mode its `reasoning "
    "effort` prompt. Token reduction = 1 − mean tokens / mean tokens of `high`; Δ accuracy is paired per "
    "problem against `high`, its interval a bootstrap over the problems both have."
)


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _html_table(rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _unconstrained_note(metrics: Sequence[Mapping[str, Any]]) -> list[str]:
    notes = []
    for m in _ordered(metrics):
        if m["mode"] == EvalMode.UNCONSTRAINED:
            notes.append(
                f"{m['benchmark']}: {m['model']} unconstrained: accuracy {_fmt(m['accuracy'], 'pct', m)}, "
                f"mean reasoning tokens {_fmt(m['mean_reasoning_tokens'], 'f1', m)} (the reference for tokens saved)"
            )
    return notes


def render_markdown(
    title: str,
    metrics: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Any],
    modes: Sequence[Mapping[str, Any]] = (),
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += ["", *(f"- {n}" for n in _unconstrained_note(metrics)), ""]
    lines += ["## Metrics per benchmark, series and budget", "", _markdown_table(metrics_table_rows(metrics)), ""]
    if modes:
        lines += ["## Effort modes", "", MODES_NOTE, "", _markdown_table(mode_table_rows(modes)), ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .facts li { margin: 0.1rem 0; }
.pos { color: #1a7f37; } .neg { color: #cf222e; }
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def render_html(
    title: str,
    metrics: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Any],
    plots: Mapping[str, Path],
    modes: Sequence[Mapping[str, Any]] = (),
) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", "<ul class='facts'>"]
    parts += [f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in facts.items()]
    parts += [f"<li>{html.escape(n)}</li>" for n in _unconstrained_note(metrics)]
    parts.append("</ul>")
    for name, path in plots.items():
        parts += [f"<h2>{html.escape(name)}</h2>", _img(path, f"accuracy and reasoning length vs budget: {name}")]
    parts += ["<h2>Metrics</h2>", _html_table(metrics_table_rows(metrics), "metrics")]
    if modes:
        parts += [
            "<h2>Effort modes</h2>",
            f"<p>{html.escape(MODES_NOTE)}</p>",
            _html_table(mode_table_rows(modes), "modes"),
        ]
    return _page(title, "".join(parts))


# --------------------------------------------------------------------------- comparison


def compare_rows(
    first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]], names: tuple[str, str]
) -> list[list[str]]:
    """Rows present in both evaluations, keyed by (benchmark, series, budget): accuracy and length, and
    the difference second - first."""

    def key(m: Mapping[str, Any]) -> tuple[str, str, int]:
        return (m["benchmark"], series_label(m), int(m["budget_tokens"]))

    a = {key(m): m for m in first if m["mode"] not in _APART}
    b = {key(m): m for m in second if m["mode"] not in _APART}
    header = ["benchmark", "series", "budget"]
    header += [f"accuracy {names[0]}", f"accuracy {names[1]}", "Δ accuracy"]
    header += [f"tokens {names[0]}", f"tokens {names[1]}", "Δ tokens"]
    rows = [header]
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        d_acc = y["accuracy"] - x["accuracy"]
        d_len = y["mean_reasoning_tokens"] - x["mean_reasoning_tokens"]
        accuracy = [_fmt(x["accuracy"], "pct", x), _fmt(y["accuracy"], "pct", y), f"{100 * d_acc:+.1f} pt"]
        tokens = [_fmt(x["mean_reasoning_tokens"], "f1", x), _fmt(y["mean_reasoning_tokens"], "f1", y), f"{d_len:+.1f}"]
        rows.append([k[0], k[1], str(k[2]), *accuracy, *tokens])
    return rows


def render_comparison(
    names: tuple[str, str], first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]]
) -> tuple[str, str]:
    """(markdown, html) of two evaluations side by side."""
    rows = compare_rows(first, second, names)
    title = f"Evaluation comparison: {names[0]} vs {names[1]}"
    only = len(
        {tuple(r[:3]) for r in metrics_table_rows(first)[1:]} ^ {tuple(r[:3]) for r in metrics_table_rows(second)[1:]}
    )
    note = f"{len(rows) - 1} rows in both; {only} rows in only one of them (not shown)."
    markdown = f"# {title}\n\n{note}\n\n{_markdown_table(rows)}\n"
    body = f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>{_html_table(rows, 'comparison')}"
    return markdown, _page(title, body)
