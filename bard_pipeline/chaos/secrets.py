"""Fault 8, secrets: runs with distinctive fake credentials in the environment must leave them nowhere.

AWS keys, an OpenAI key, an HF token sit in every run's environment; an error path that records headers or an error
body, a config dump, a URL with credentials would copy them into the store, logs, the Prefect API or a report. Fresh
fakes (a hit can only come from this trial), error paths provoked (a 401, a dead endpoint), everything scanned."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets as system_random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, quote_plus

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from bard_core.config import RayConfig
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.reaper import system_tmp

WRONG_KEY_ENV = "BARD_CHAOS_WRONG_OPENAI_KEY"  # the 401 run's key: a secret too, which the server refuses
Secrets = Mapping[str, str] | Sequence[str]  # by name (hits name them) or a bare list (hits number them)


def fake_secrets() -> dict[str, str]:
    """Environment name -> a fresh value shaped like the real one (the AWS secret's '/' and '+' get URL-encoded)."""
    b64 = base64.b64encode(os.urandom(30)).decode()
    return {
        "AWS_ACCESS_KEY_ID": "AKIACHAOS" + system_random.token_hex(6).upper()[:11],
        "AWS_SECRET_ACCESS_KEY": f"chaos/{b64[:16]}+{b64[16:33]}",
        "AWS_SESSION_TOKEN": "FwoGchaos" + system_random.token_urlsafe(60),
        "OPENAI_API_KEY": "sk-chaos-" + system_random.token_hex(20),
        WRONG_KEY_ENV: "sk-chaos-wrong-" + system_random.token_hex(16),
        "HF_TOKEN": "hf_chaos" + system_random.token_hex(15),
    }


def encoded_forms(value: str) -> dict[str, bytes]:
    """The forms a value takes where it is copied: raw, JSON-escaped, URL-encoded, and base64 at each of the
    three alignments it can have inside a longer encoded blob (a Basic-auth header, a pickled config)."""
    raw, escaped, url = value.encode(), json.dumps(value)[1:-1], quote(value, safe="")
    forms = {"raw": raw, "json": escaped.encode(), "json \\/": escaped.replace("/", "\\/").encode()}
    forms |= {"url": url.encode(), "url +": quote_plus(value).encode()}
    for k in range(3):  # the chars that depend on the k bytes before it, or on those after it, are left out
        encoded = base64.b64encode(b"\0" * k + raw)[-(-8 * k // 6) : 8 * (k + len(raw)) // 6]
        forms |= {f"base64@{k}": encoded, f"base64url@{k}": encoded.replace(b"+", b"-").replace(b"/", b"_")}
    return {n: f for f, n in {f: n for n, f in reversed(forms.items())}.items()}  # each distinct form, first name


def _views(path: Path) -> Iterator[tuple[str, Callable[[int], bytes]]]:
    """The file's bytes, plus what a container hides from a byte scan: Parquet values (pages are compressed), gzip or
    zstd streams decompressed, a SQLite database's values (a long one spans pages, with headers in between)."""
    with path.open("rb") as handle:
        magic = handle.read(16)
        handle.seek(0)
        yield "", handle.read
    if magic.startswith(b"PAR1"):
        table, sink = pq.read_table(path), pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        yield " (parquet values)", pa.BufferReader(sink.getvalue()).read
    elif magic[:2] == b"\x1f\x8b" or magic[:4] == b"\x28\xb5\x2f\xfd":
        codec = "gzip" if magic[:2] == b"\x1f\x8b" else "zstd"
        with pa.CompressedInputStream(pa.OSFile(str(path)), codec) as stream:
            yield f" ({codec} stream)", stream.read
    elif magic.startswith(b"SQLite format 3\0"):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            rows = [row for t in tables for row in db.execute(f'SELECT * FROM "{t}"')]
        values = [v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row if v is not None]
        yield " (sqlite values)", pa.BufferReader(b"\n".join(values)).read


def scan(paths: list[Path], texts: Mapping[str, str], secrets: Secrets, stats: Counter[str] | None = None) -> list[str]:
    """Each place a secret (or an encoded form) occurs in files under ``paths`` (binary-safe) or in ``texts``, as
    'where: which secret' (its name, never its value). An unreadable file is a hit too: unread is not clean."""
    named = secrets if isinstance(secrets, Mapping) else {f"secret #{i}": s for i, s in enumerate(secrets)}
    needles = [(n if f == "raw" else f"{n} ({f})", b) for n, v in named.items() for f, b in encoded_forms(v).items()]
    overlap = max((len(b) for _, b in needles), default=1) - 1  # pieces overlap: a needle across a cut is seen
    stats, hits = (stats if stats is not None else Counter()), list[str]()

    def look(where: str, read: Callable[[int], bytes]) -> None:
        found, tail = set(), b""
        while piece := read(1 << 20):  # a MiB at a time: files of any size
            found |= {name for name, needle in needles if needle in tail + piece}
            tail = (tail + piece)[-overlap:]
        hits.extend(f"{where}: {name}" for name, _ in needles if name in found)

    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()})
    for file in (f for f in files if not f.is_symlink()):
        try:
            stats.update(files=1, bytes=file.stat().st_size)
            for suffix, read in _views(file):
                look(f"{file}{suffix}", read)
        except (OSError, pa.ArrowException, sqlite3.Error) as exc:
            hits.append(f"{file}: not scanned ({type(exc).__name__})")
    for where, text in texts.items():
        stats.update(texts=1, bytes=len(text))
        look(where, pa.BufferReader(text.encode()).read)
    return hits


def prefect_view(flow_run_ids: Sequence[str]) -> dict[str, str]:
    """What the Prefect API (and so its UI) shows of these flow runs, one text per object: each run (name,
    parameters, state message), its states, its task runs, artifacts (the markdown) and log lines."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters as f

    runs = f.FlowRunFilter(id=f.FlowRunFilterId(any_=list(flow_run_ids)))  # type: ignore[arg-type]
    logs = f.LogFilter(flow_run_id=f.LogFilterFlowRunId(any_=list(flow_run_ids)))  # type: ignore[arg-type]
    texts: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=runs):
            texts[f"prefect flow run {run.name} {run.id}"] = run.model_dump_json()
            texts |= {f"prefect state {s.id}": s.model_dump_json() for s in client.read_flow_run_states(run.id)}
        pages: dict[str, Callable[[int], Sequence[Any]]] = {
            "task run": lambda at: client.read_task_runs(flow_run_filter=runs, limit=200, offset=at),
            "artifact": lambda at: client.read_artifacts(flow_run_filter=runs, limit=200, offset=at),
            "log": lambda at: client.read_logs(logs, limit=200, offset=at),
        }
        for kind, page in pages.items():
            while batch := page(sum(k.startswith(f"prefect {kind} ") for k in texts)):
                texts |= {f"prefect {kind} {o.id}": o.model_dump_json() for o in batch}
    return texts


def prefect_files() -> list[Path]:
    """Prefect's home (result storage; the ephemeral server's DB) and the folder of the API's SQLite DB."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    url = u.get_secret_value() if (u := settings.server.database.connection_url) else ""
    db = [Path(url.split(":///", 1)[1]).parent] if url.startswith("sqlite") and ":///" in url else []
    return [p for p in [Path(settings.home), *db] if p.exists()]


Runner = Callable[[Sequence[str], "str | None"], Any]  # (overrides, until) -> the run's final Prefect state


def in_process(recipe: str) -> Runner:
    """Runs of ``recipe`` in this process, on the Prefect API it is set up for: the trial reads them back there."""
    from bard_pipeline.flows.distill import distill

    return lambda overrides, until: distill(recipe=recipe, overrides=list(overrides), until=until, return_state=True)


@dataclass(frozen=True)
class Targets:
    """What the caller serves: S3 with ``bucket``, a server that 401s all but ``OPENAI_API_KEY``, a dead URL."""

    s3_endpoint: str
    bucket: str
    openai_url: str
    dead_url: str


@dataclass
class SecretsReport:
    """The verdict and its evidence: the hits, the runs' final Prefect states, files/texts/bytes scanned per place."""

    result: TrialResult
    hits: list[str]
    states: dict[str, Any]  # by case: "401", "dead endpoint", "working"
    scanned: dict[str, Counter[str]] = field(default_factory=dict)


@contextmanager
def _captured_logs(path: Path) -> Iterator[None]:
    """Every record (tracebacks included) reaching the root logger or one that does not propagate, into ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    every = logging.Logger.manager.loggerDict.values()
    loggers = [logging.getLogger(), *(lg for lg in every if isinstance(lg, logging.Logger) and not lg.propagate)]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()


def secrets_trial(workdir: Path, secrets: Mapping[str, str], targets: Targets, run: Runner) -> SecretsReport:
    """Three runs with ``secrets`` in the environment, on S3, until materialize: the teacher's key refused (401), its
    endpoint dead, a working one (OpenAI engine for sample and compress); then S3, Ray's logs, the cache, the logs,
    Prefect's files and API are scanned. Survived: no hit, the 401 run and the dead one failed, the first naming the
    key's variable (never its value)."""
    workdir.mkdir(parents=True, exist_ok=True)
    prefix, t0 = f"chaos-secrets-{system_random.token_hex(4)}", time.monotonic()
    ray_dir = Path(
        tempfile.mkdtemp(prefix="bard-chaos-ray-", dir=system_tmp())
    )  # short: Ray's socket paths have a length limit
    problems = workdir / "problems.jsonl"  # their answer is the fault server's canned \boxed{42}: gold traces
    rows = [{"id": f"p{a}", "problem": f"What is {a} + {42 - a}?", "answer": "42"} for a in range(1, 13)]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sources = f"[{{kind: file, path: '{problems}', split: train}}, {{kind: toy, split: test, size: 8, seed: 4}}]"

    def overrides(case: str, url: str, key_env: str, engines: Sequence[str] = ("sample",)) -> list[str]:
        engine = f"{{kind: openai, model: fault-model, base_url: '{url}', api_key_env: {key_env}, max_retries: 1}}"
        common = [f"store.root=s3://{targets.bucket}/{prefix}/{case}", f"store.endpoint_url={targets.s3_endpoint}"]
        common += [f"ingest.sources={sources}", "budget.tiers_tokens=[2, 4]"]  # tiers below the gold: compress jobs
        return common + [f"{e}.{k}" for e in engines for k in (f"engine={engine}", "resources.replicas=1")]

    env, both = {**secrets, "BARD_CACHE_DIR": str(workdir / "cache")}, ("sample", "compress")
    ray = RaySession(RayConfig(temp_dir=str(ray_dir)))  # one runtime for the three runs (a start each is slow)
    with mock.patch.dict(os.environ, env), _captured_logs(workdir / "driver.log"):
        try:
            ray.ensure()  # inside: Ray's processes inherit the secrets, as a run's own runtime would
            states = {
                "401": run(overrides("unauthorized", targets.openai_url, WRONG_KEY_ENV), "materialize"),
                "dead endpoint": run(overrides("dead", targets.dead_url, "OPENAI_API_KEY"), "materialize"),
                "working": run(overrides("working", targets.openai_url, "OPENAI_API_KEY", both), "materialize"),
            }
        finally:
            ray.shutdown()
        s3 = fsspec.filesystem("s3", client_kwargs={"endpoint_url": targets.s3_endpoint}, skip_instance_cache=True)
        s3.get(f"{targets.bucket}/{prefix}/", f"{workdir / 's3' / prefix}/", recursive=True)  # every object
    refused = WRONG_KEY_ENV in (states["401"].message or "")  # failed at start-up, naming the variable
    completed = {case: state.is_completed() for case, state in states.items()}
    api = prefect_view([str(state.state_details.flow_run_id) for state in states.values()])
    places: dict[str, tuple[list[Path], Mapping[str, str]]] = {
        "s3 objects": ([workdir / "s3"], {}),
        "ray session logs": ([ray_dir], {}),
        "cache and captured logs": ([workdir / "cache", workdir / "driver.log"], {}),
        "prefect files": (prefect_files(), {}),
        "prefect api": ([], {**api, **{f"state message of the {c} run": st.message or "" for c, st in states.items()}}),
    }
    scanned: dict[str, Counter[str]] = {place: Counter() for place in places}
    hits = [hit for place, (paths, texts) in places.items() for hit in scan(paths, texts, secrets, scanned[place])]
    provoked = refused and not completed["401"] and not completed["dead endpoint"]
    counts = ", ".join(f"{p} {c['files']} files/{c['texts']} texts/{c['bytes']} B" for p, c in scanned.items())
    detail = f"401 run refused naming its variable: {refused}; completed: {completed}; scanned {counts}"
    detail += f"; {len(hits)} hits"
    detail += f" ({hits[0]})" if hits else ""
    if not hits:
        shutil.rmtree(ray_dir, ignore_errors=True)  # kept when something leaked: it is the evidence
    survived = not hits and provoked and completed["working"]
    result = TrialResult(
        Fault.SECRETS, survived, recovery_s=time.monotonic() - t0, secret_hits=len(hits), detail=detail
    )
    return SecretsReport(result, hits, states, scanned)
