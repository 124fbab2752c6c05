"""Fault 9, bad input: generated problem files, recipes and overrides through the loaders a user's run uses.

A user's file is never the one the loader was written for (another encoding, a half-copied gzip, a column of lists,
a 5000-digit number). Each case must end in a named error (``ProblemFileError`` / ``ConfigError``) naming the file,
line or override and field, or with every row counted (rows in == accepted + rejected, each rejection with a reason
and a line of its own). Anything else, a raw traceback or a vanished row, is a failure kept with its input.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bard_core import schemas
from bard_core.config import FileSourceConfig, IngestConfig, RunConfig
from bard_core.grading import GraderKind
from bard_core.problems import ProblemCollector, ProblemFileError
from bard_core.recipes import RECIPES_DIR, ConfigError, load_config, read_recipe
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.infra.sources import source_rows

GENERATORS = ("problem files", "recipes", "overrides")
Rows = list[dict[str, Any]]
ProblemLoader = Callable[[Path, float], tuple[Rows, Rows]]  # (path, max_bad_row_share) -> (accepted, rejected)
ConfigLoader = Callable[[Path | None, Sequence[str]], object]


@dataclass(frozen=True)
class BadInputOutcome:
    """How many generated inputs were tried; each that ended otherwise than a named error or a full count."""

    cases: int
    failures: list[str]  # "<generator>: <input, shortened> -> <exception type: first line | what is wrong>"


def load_problems(path: Path, max_bad_row_share: float) -> tuple[Rows, Rows]:
    """What ingest does with a ``kind: file`` source, tables included: a row their schemas refuse fails the stage."""
    collector = ProblemCollector(max_problem_chars=IngestConfig().max_problem_chars)
    collector.add(source_rows(FileSourceConfig(path=str(path), max_bad_row_share=max_bad_row_share)),
                  "train", GraderKind.MATH, None)  # fmt: skip
    pa.Table.from_pylist(collector.accepted, schema=schemas.PROBLEMS)
    pa.Table.from_pylist(collector.rejected, schema=schemas.REJECTIONS)
    return collector.accepted, collector.rejected


@dataclass(frozen=True)
class ProblemFile:
    """A generated file. ``rows_in`` None: only a named error is right; ``bad_line``: non-UTF-8, the error names it."""

    name: str
    data: bytes
    rows_in: int | None
    bad_line: int | None = None


def _count(data: bytes) -> tuple[int, int | None]:
    """(non-blank lines, first line that is not UTF-8), split as the loader splits: at b'\\n' only."""
    texts = [line.decode("utf-8", "surrogateescape").removeprefix("\ufeff") for line in data.split(b"\n")]
    bad = [i for i, text in enumerate(texts, start=1) if any("\udc80" <= c <= "\udcff" for c in text)]  # escaped bytes
    return sum(bool(text.strip()) for text in texts), (bad or [None])[0]


_SECTIONS = sorted(RunConfig.model_fields)
_FIELDS = sorted({n for f in RunConfig.model_fields.values() for n in getattr(f.annotation, "model_fields", {})})
_KEY = st.sampled_from(_SECTIONS + _FIELDS) | st.text(max_size=8)
_HUGE = {"HUGEINT": "9" * 5000, "HUGEHEX": "0x" + "f" * 5000}  # placeholders: yaml.safe_dump cannot write these
_BIG = [*_HUGE, "x" * 20_000]
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.sampled_from(_BIG))
_TREE = st.recursive(_LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(_KEY, c, max_size=3), max_leaves=8)
_GOOD_ROW = st.fixed_dictionaries({"id": st.text(max_size=8), "problem": st.text(min_size=1, max_size=40),
                                   "answer": st.text(max_size=8) | st.integers()})  # fmt: skip
_ROW = _GOOD_ROW | st.dictionaries(st.sampled_from(["id", "problem", "answer", "meta", "question"]), _TREE)
_SPECIAL_LINES = [
    '{"id": "long", "problem": "' + "x" * 20_000 + '", "answer": "1"}',  # over ingest.max_problem_chars
    '{"id": "big", "problem": "q", "answer": ' + "9" * 5000 + "}",  # past int()'s 4300 digits
    "[" * 5000 + "]" * 5000,  # past the JSON parser's recursion limit
    '{"id": "s", "problem": "a\\udc80", "answer": "1"}',  # a lone surrogate: no UTF-8 table can hold it
    '{"id": "n", "problem": NaN, "answer": Infinity}',
]
_LINE = st.one_of(
    st.builds(lambda r, a: json.dumps(r, ensure_ascii=a), _ROW, st.booleans()),
    st.builds(lambda r, k: json.dumps(r)[:k], _GOOD_ROW, st.integers(0, 30)),  # cut short
    st.sampled_from(_SPECIAL_LINES),
    st.text(max_size=30),
)
_GOOD_LINES = st.lists(_GOOD_ROW.map(json.dumps), min_size=9, max_size=20)  # one bad line in 10+: within the share
_MOSTLY_GOOD = st.builds(lambda good, bad: [*good[:5], bad, *good[5:]], _GOOD_LINES, st.sampled_from(_SPECIAL_LINES))
_ENCODING = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le"])
_COLUMN = st.sampled_from([st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(),
                           st.lists(st.integers(0, 9), max_size=3), st.none() | st.text(max_size=5)])  # fmt: skip


@st.composite
def problem_files(draw: st.DrawFn) -> ProblemFile:
    """JSONL in some encoding and line ending, plain or gzip (whole or cut), random bytes, or Parquet of any types."""
    kind = draw(st.sampled_from(["jsonl", "gzip", "cut gzip", "random bytes", "parquet"]))
    if kind == "parquet":  # id/problem/answer columns of one random type each, some maybe absent
        n = draw(st.integers(0, 12))
        names = draw(st.lists(st.sampled_from(["id", "problem", "answer", "extra"]), unique=True, min_size=1))
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({k: pa.array(draw(st.lists(draw(_COLUMN), min_size=n, max_size=n))) for k in names}),
                       sink)  # fmt: skip
        return ProblemFile("p.parquet", sink.getvalue().to_pybytes(), n)
    if kind == "random bytes":
        suffix, data = draw(st.sampled_from([".jsonl", ".ndjson", ".jsonl.gz", ".parquet"])), draw(st.binary())
        rows, bad = _count(data) if suffix in (".jsonl", ".ndjson") else (None, None)
        return ProblemFile("rand" + suffix, data, rows, bad)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = "".join(line + newline for line in draw(st.lists(_LINE, max_size=25) | _MOSTLY_GOOD))
    raw = text.encode(draw(_ENCODING), errors="replace")
    rows, bad = _count(raw)
    if kind == "jsonl":
        return ProblemFile("p" + draw(st.sampled_from([".jsonl", ".ndjson", ".JSONL"])), raw, rows, bad)
    packed = gzip.compress(raw, mtime=0)
    if kind == "gzip":
        return ProblemFile("p" + draw(st.sampled_from([".jsonl.gz", ".json.gz", ".JSONL.GZ"])), packed, rows, bad)
    return ProblemFile("p.jsonl.gz", packed[: draw(st.integers(0, len(packed) - 1))], None)


def check_problem_file(case: ProblemFile, path: Path, loader: ProblemLoader, share: float) -> str | None:
    """None when the file ended in a named error or had every row counted; else what went wrong."""
    try:
        accepted, rejected = loader(path, share)
    except ProblemFileError as exc:
        named = str(path) in str(exc) and (case.bad_line is None or f"{path}:{case.bad_line}:" in str(exc))
        return None if named else f"ProblemFileError not naming the file (line {case.bad_line}): {_first(str(exc))}"
    except Exception as exc:
        return f"{type(exc).__name__}: {_first(str(exc))}"
    if len(accepted) + len(rejected) != case.rows_in:  # rows_in None: the file cannot be read whole, so no rows
        return f"rows in {case.rows_in} != accepted {len(accepted)} + rejected {len(rejected)}, and no error"
    lines = [r["row"] for r in rejected]
    if not all(r["reason"] for r in rejected) or None in lines or len(set(lines)) != len(lines):
        return f"a rejection without a reason or a line of its own: {rejected[:2]!r}"
    return None


_TOY = read_recipe(RECIPES_DIR / "toy.yaml")
_DEEP = "[" * 1200 + "]" * 1200  # past PyYAML's recursion limit; its scanner is quadratic in depth: only now and then


def _dump(tree: object) -> str:
    return re.sub("HUGEINT|HUGEHEX", lambda m: _HUGE[m[0]], yaml.safe_dump(tree, allow_unicode=True))


@st.composite
def _mutated_toy(draw: st.DrawFn) -> object:
    """The toy recipe with a section or field replaced by a wrong-shaped tree: deep validators see only what passes."""
    data, section = {**_TOY}, draw(st.sampled_from(sorted(_TOY)))
    fields = sorted(data[section]) if isinstance(data[section], dict) and draw(st.booleans()) else []
    data[section] = {**data[section], draw(st.sampled_from(fields)): draw(_TREE)} if fields else draw(_TREE)
    return data


_ODD_RECIPES = [f"sample: {_DEEP}", "sample: " + "[" * 50 + "]" * 50, "\t- x", "a: b: c", "? [1]\n: 2", "x: *a"]
_RECIPE_TEXT = st.dictionaries(_KEY, _TREE, max_size=4) | _mutated_toy() | _TREE.filter(lambda t: type(t) is not dict)
recipes = st.one_of(  # YAML of wrong shapes in UTF-8 or another encoding, random bytes, odd YAML
    st.builds(lambda t, enc: _dump(t).encode(enc, errors="replace"), _RECIPE_TEXT, _ENCODING),
    st.binary(max_size=200),
    st.sampled_from(_ODD_RECIPES).map(str.encode),
)


def _paths(node: object, prefix: str = "") -> list[str]:
    """Every dotted key of a recipe, list items by index: overrides that reach real fields, not only typos."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [p for k, v in items for p in [f"{prefix}{k}", *_paths(v, f"{prefix}{k}.")]]


_PART = st.sampled_from([*_SECTIONS, *_FIELDS, "0", "1", "²", "9" * 30, ""]) | st.text(max_size=6)
_flow = functools.partial(yaml.safe_dump, default_flow_style=True)
_ODD_VALUES = ["9" * 5000, _DEEP, "0x" + "f" * 5000, "{a: [", "null", "", "!!binary x", "*alias", "~nosuchuser"]
_OVERRIDE_VALUE = st.one_of(st.text(max_size=20), _TREE.map(_flow), st.sampled_from(_ODD_VALUES))
_OVERRIDE_KEY = st.sampled_from(_paths(_TOY)) | st.lists(_PART, min_size=1, max_size=4).map(".".join)
_OVERRIDE = st.builds(lambda k, sep, v: k + sep + v, _OVERRIDE_KEY, st.sampled_from(["=", "=", ""]), _OVERRIDE_VALUE)
overrides = st.lists(_OVERRIDE, min_size=1, max_size=3)


def check_config(path: Path | None, given_overrides: Sequence[str], loader: ConfigLoader) -> str | None:
    """None for a valid config or a ConfigError naming the file or override, each problem a line naming its field."""
    try:
        loader(path, given_overrides)
    except ConfigError as exc:
        message, origin = str(exc), str(path) if path is not None else "<defaults>"
        if origin not in message and not any(repr(o)[:60] in message for o in given_overrides):
            return f"ConfigError that names neither the file nor the override: {_first(message)}"
        details = message.splitlines()[1:] if "config error(s)" in _first(message) else []
        named = all(d.startswith("  ") and ": " in d for d in details)
        return None if named else f"ConfigError with a problem that names no field: {message[:200]!r}"
    except Exception as exc:
        return f"{type(exc).__name__}: {_first(str(exc))}"
    return None


def _first(text: str) -> str:
    return (text.splitlines() or [""])[0][:160]


def run_bad_input(max_examples: int, seed: int | None = None, generators: Sequence[str] = GENERATORS,
                  problem_loader: ProblemLoader = load_problems, config_loader: ConfigLoader = load_config,
                  ) -> BadInputOutcome:  # fmt: skip
    """``max_examples`` generated cases per generator through the loaders (a parameter, so a test can hand in a
    broken one). A failure is recorded, not raised, so hypothesis goes on drawing; ``seed`` fixes the draw."""
    outcomes: list[str | None] = []
    config = settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), print_blob=False)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bard-bad-input-") as tmp:

        def record(generator: str, shown: object, problem: str | None) -> None:
            outcomes.append(problem and f"{generator}: {repr(shown)[:120]} -> {problem}")

        @given(problem_files(), st.sampled_from([0.1, 1.0]))
        def problem_case(case: ProblemFile, share: float) -> None:
            (path := Path(tmp) / f"{len(outcomes)}-{case.name}").write_bytes(case.data)
            record("problem files", (case.name, case.data[:80]), check_problem_file(case, path, problem_loader, share))

        @given(recipes)
        def recipe_case(data: bytes) -> None:
            (path := Path(tmp) / f"recipe-{len(outcomes)}.yaml").write_bytes(data)
            record("recipes", data[:100], check_config(path, (), config_loader))

        @given(st.sampled_from([None, RECIPES_DIR / "toy.yaml"]), overrides)
        def override_case(recipe: Path | None, given_overrides: list[str]) -> None:
            record("overrides", [o[:60] for o in given_overrides], check_config(recipe, given_overrides, config_loader))

        drivers = {"problem files": problem_case, "recipes": recipe_case, "overrides": override_case}
        for name in generators:
            config(drivers[name] if seed is None else hypothesis.seed(seed)(drivers[name]))()
    return BadInputOutcome(len(outcomes), [o for o in outcomes if o])


def trials(max_examples: int, seed: int | None = None) -> list[TrialResult]:
    """The campaign's rows for this fault, one per generator: survived when none of its cases failed."""
    outcomes = {name: run_bad_input(max_examples, seed, generators=(name,)) for name in GENERATORS}
    return [TrialResult(Fault.BAD_INPUT, survived=not o.failures, cases=o.cases,
                        detail=o.failures[0][:200] if o.failures else f"{name}: every case a named error or counted")
            for name, o in outcomes.items()]  # fmt: skip
