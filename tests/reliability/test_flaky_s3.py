"""Chaos fault 3, flaky object storage: a proxy in front of the S3 server fails a share of the requests (503
SlowDown, 500, a connection reset mid-answer, multi-second stalls). The store must come through, every manifest
verify, and every retry be logged and counted in the manifests; a store that keeps failing must say which key."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from bard_pipeline.chaos.rows import diff, run_rows
from bard_pipeline.chaos.s3proxy import FAULT_KINDS, FaultPlan, FaultyS3Proxy
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.streams import PROCESS_IO, StoreIOError
from bard_pipeline.infra.writer import ArtifactWriter
from tests.conftest import SmokeRun
from tests.support.chaos import clean_run
from tests.support.flows import run_flow, statuses

MiB = 2**20
STORE_LOGGER = "bard_pipeline.infra.streams"


def _store(endpoint: str, name: str) -> ArtifactStore:
    return ArtifactStore(f"s3://bard-test/flaky-{name}-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint,
                         chunk_bytes=5 * MiB)  # fmt: skip


def _big_file(path: Path, size: int) -> str:
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for index in range(0, size, MiB):
            piece = index.to_bytes(8, "little") + block[8 : min(MiB, size - index)]
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest()


def _round_trip(store: ArtifactStore, index: int, big: Path, tmp_path: Path) -> int:
    """Write an artifact (two tables, a JSON file, a file of three chunks), read it all back, verify it; returns
    the retries its manifest counted."""
    ref = ArtifactRef("flaky", f"{index:04d}" + "f" * 16)
    table = pa.table({"id": list(range(500)), "text": [f"row {i} " * 8 for i in range(500)]})
    writer = ArtifactWriter(store, ref)
    writer.write_table("problems", table)
    writer.write_shard("traces", 0, table.slice(0, 250))
    writer.write_json("stats.json", {"round": index})
    writer.write_file("model/weights.bin", big)
    manifest = writer.commit(inputs={}, config={"round": index}, prompts={})
    assert store.manifest(ref) == manifest
    assert store.read_table(ref, "problems").equals(table)
    assert store.read_table(ref, "traces").equals(table.slice(0, 250))
    fetched = store.fetch_file(ref, manifest.file("model/weights.bin"), tmp_path / f"weights-{index}.bin")
    assert fetched.stat().st_size == big.stat().st_size
    assert store.verify(ref) == []
    assert set(manifest.io) == {"requests", "retries"} and manifest.io["requests"] > 0
    return manifest.io["retries"]


def test_the_store_survives_a_flaky_s3_and_counts_its_retries(
    s3_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = tmp_path / "weights.bin"
    _big_file(big, 12 * MiB + 17)  # three parts of 5 MiB chunks
    plan = FaultPlan(rate=0.3, stall_s=0.5, seed=11)
    retries, rounds, before = 0, 0, PROCESS_IO.retries
    with caplog.at_level(logging.WARNING, STORE_LOGGER), FaultyS3Proxy(s3_endpoint, plan) as proxy:
        store = _store(proxy.url, "store")
        while rounds < 8 and (rounds < 2 or min(proxy.faults.values()) == 0):  # until every kind was injected
            retries += _round_trip(store, rounds, big, tmp_path)
            rounds += 1
    counts, retried = proxy.counts(), PROCESS_IO.retries - before
    print(f"flaky store: {rounds} rounds, proxy {counts}, {retried} retries, {retries} in the manifests")
    assert all(counts[kind] > 0 for kind in FAULT_KINDS), counts
    assert 0 < retries <= retried
    assert retried == counts["slowdown_503"] + counts["internal_500"] + counts["reset_mid_body"]  # none silent
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("retry" in w and "bard-test/flaky-store-" in w for w in warnings), warnings[:5]
    assert not any(os.environ["AWS_SECRET_ACCESS_KEY"] in w for w in warnings)


def test_a_store_that_keeps_failing_fails_the_write_naming_the_key(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own setting wins over the store's 10 attempts
    with FaultyS3Proxy(s3_endpoint, FaultPlan(rate=1.0, internal_500=0, reset_mid_body=0, stall=0)) as proxy:
        store = _store(proxy.url, "down")
        writer = ArtifactWriter(store, ArtifactRef("flaky", "d" * 20))
        with pytest.raises(StoreIOError, match=r"could not write s3://bard-test/flaky-down-\w+/flaky/d{20}/stats\."):
            writer.write_json("stats.json", {"a": 1})
    assert proxy.faults["slowdown_503"] >= 2


def test_a_read_cut_every_time_fails_naming_the_key(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(s3_endpoint, "cut")
    ref = ArtifactRef("flaky", "c" * 20)
    writer = ArtifactWriter(store, ref)
    entry = writer.write_json("stats.json", {"a": 1})
    writer.commit(inputs={}, config={}, prompts={})
    cuts = FaultPlan(rate=1.0, slowdown_503=0, internal_500=0, stall=0)
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with FaultyS3Proxy(s3_endpoint, cuts) as proxy:
        flaky = ArtifactStore(store.root, endpoint_url=proxy.url, chunk_bytes=5 * MiB)
        before = PROCESS_IO.retries
        started = time.monotonic()
        with pytest.raises(StoreIOError, match=rf"{flaky.root}/{ref.key}/stats\.\w+\.json failed 8 times"):
            flaky.read_bytes(ref, entry)
    assert PROCESS_IO.retries > before
    assert time.monotonic() - started < 120


def _lose_completion_answers(monkeypatch: pytest.MonkeyPatch, *, completed: bool) -> None:
    """Each multipart completion fails as a retried one does after its first answer was cut: NoSuchUpload (which
    s3fs raises as FileNotFoundError); ``completed``: the first one went through."""
    from s3fs.core import S3File

    original = S3File.commit

    def commit(self: S3File) -> None:
        if not self.parts:
            return original(self)  # a single PUT: retried whole by botocore
        if completed:
            original(self)
        raise FileNotFoundError("The specified upload does not exist.")

    monkeypatch.setattr(S3File, "commit", commit)


def test_a_multipart_completion_whose_answer_was_lost_is_found_in_place(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(s3_endpoint, "lost")
    data = os.urandom(11 * MiB)  # three parts
    path = store.path(ArtifactRef("flaky", "a" * 20), "big.bin")
    _lose_completion_answers(monkeypatch, completed=True)
    with caplog.at_level(logging.WARNING, STORE_LOGGER):
        store.put_atomic(path, data)
    assert store.cat(path) == data
    assert "lost its answer" in caplog.text and path in caplog.text


def test_a_multipart_completion_that_did_not_happen_fails_naming_the_key(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(s3_endpoint, "undone")
    path = store.path(ArtifactRef("flaky", "b" * 20), "big.bin")
    _lose_completion_answers(monkeypatch, completed=False)
    with pytest.raises(StoreIOError, match=f"could not write s3://{path}: FileNotFoundError"):
        store.put_atomic(path, os.urandom(11 * MiB))
    assert not store.fs.exists(path)


@pytest.mark.slow
@pytest.mark.campaign  # the campaign's flaky-s3 fault: a whole run through the proxy (the unit cases above are CI's)
def test_a_whole_run_through_a_flaky_s3_completes_verified_with_its_retries_counted(
    prefect_api: None, s3_endpoint: str, smoke_run: SmokeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smoke run's recipe up to sft (shards, tables, checkpoints through Ray Train's own S3 client) on S3
    behind the proxy; its rows are the smoke run's."""
    monkeypatch.setenv("BARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BARD_NATIVE_BF16", "0")
    clean = clean_run(smoke_run, "sft")
    root = f"s3://bard-test/flaky-run-{uuid.uuid4().hex[:8]}"
    plan = FaultPlan(rate=0.15, stall_s=1.0, seed=3)
    started = time.monotonic()
    with FaultyS3Proxy(s3_endpoint, plan) as proxy:
        overrides = [*clean.overrides, f"store.root={root}", f"store.endpoint_url={proxy.url}"]
        state, record, store = run_flow(overrides, until="sft")
        assert state.is_completed(), state.message
        assert set(statuses(record).values()) == {"executed"}, statuses(record)
        manifests = []
        for info in record["stages"].values():
            ref = ArtifactRef.parse(info["artifact"])
            assert store.verify(ref) == [], ref.key
            manifests.append(store.manifest(ref))
        rows = diff(clean.expected(), run_rows(store, record))  # through the proxy, while it runs
    elapsed = time.monotonic() - started
    counts = proxy.counts()
    retries = sum(m.io.get("retries", 0) for m in manifests)
    requests = sum(m.io.get("requests", 0) for m in manifests)
    print(f"flaky run: {elapsed:.0f} s, proxy {counts}, manifests: {requests} requests, {retries} retries")
    assert all(counts[kind] > 0 for kind in FAULT_KINDS), counts
    assert retries > 0
    assert rows.equal, rows
