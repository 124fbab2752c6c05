"""The artifact store over a local folder and a real S3 API (moto server on 127.0.0.1)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pyarrow as pa
import pytest

from bard_pipeline.infra.store import (
    AmbiguousRunError,
    ArtifactNotFoundError,
    ArtifactRef,
    ArtifactStore,
    ChecksumMismatchError,
)
from bard_pipeline.infra.writer import ArtifactWriter

REF = ArtifactRef("sample", "f" * 20)


def _commit(store: ArtifactStore, ref: ArtifactRef = REF, value: int = 1) -> None:
    writer = ArtifactWriter(store, ref)
    writer.write_table("problems", pa.table({"x": [value, value + 1]}))
    writer.write_shard("traces", 0, pa.table({"y": [value]}))
    writer.write_shard("traces", 1, pa.table({"y": [value + 1, value + 2]}))
    writer.write_bytes("tokenizer/tokenizer.json", json.dumps({"v": value}).encode())
    writer.commit(inputs={"problems": "ingest/abc"}, config={"n": value}, prompts={})


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "file":
        return ArtifactStore(f"file://{tmp_path}/store")
    endpoint = request.getfixturevalue("s3_endpoint")
    return ArtifactStore(f"s3://bard-test/{tmp_path.name}", endpoint_url=endpoint)


def test_commit_read_verify_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    assert not store.exists(REF)
    with pytest.raises(ArtifactNotFoundError, match="no artifact sample/fff"):
        store.manifest(REF)
    _commit(store)
    manifest = store.manifest(REF)
    assert manifest.rows == {"problems": 2, "traces": 3}
    assert manifest.inputs == {"problems": "ingest/abc"} and manifest.code["version"]
    assert "pyarrow" in manifest.packages and manifest.timings["wall_s"] >= 0
    assert store.read_table(REF, "traces").column("y").to_pylist() == [1, 2, 3]
    assert store.verify(REF) == []
    out = store.fetch_dir(REF, tmp_path / "export", prefix="tokenizer")
    assert json.loads((out / "tokenizer.json").read_text()) == {"v": 1}
    assert [m.fingerprint for m in store.list("sample")] == [REF.fingerprint]
    store.remove(REF)
    assert not store.exists(REF)


def test_files_are_content_addressed(store: ArtifactStore) -> None:
    _commit(store)
    entry = store.manifest(REF).file("problems.parquet")
    assert entry.path == f"problems.{entry.sha256[:16]}.parquet"


def test_checksum_mismatch_is_detected_with_a_clear_error(store: ArtifactStore) -> None:
    _commit(store)
    entry = store.manifest(REF).file("problems.parquet")
    store.put_atomic(store.path(REF, entry.path), b"tampered")
    with pytest.raises(ChecksumMismatchError) as info:
        store.read_table(REF, "problems")
    message = str(info.value)
    assert entry.path in message and "does not match the manifest" in message and "bard artifacts rm" in message
    assert len(store.verify(REF)) == 1
    store.fs.rm(store.path(REF, entry.path))
    assert "missing" in store.verify(REF)[0]


def _killed_writer(root: str) -> None:
    store = ArtifactStore(root)
    writer = ArtifactWriter(store, REF)
    writer.write_shard("traces", 0, pa.table({"y": [1]}))
    writer.write_shard("traces", 1, pa.table({"y": [2]}))
    os.kill(os.getpid(), signal.SIGKILL)  # dies before commit, like an OOM-killed worker


def test_a_killed_writer_leaves_no_manifest_and_its_shards_are_resumed(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store"
    process = mp.get_context("spawn").Process(target=_killed_writer, args=(root,))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    store = ArtifactStore(root)
    assert not store.exists(REF)
    writer = ArtifactWriter(store, REF)
    resumed = writer.resume_shards("traces")
    assert sorted(resumed) == [0, 1]
    # A damaged leftover is not adopted: its name no longer matches its content.
    store.put_atomic(store.path(REF, resumed[1].path), b"torn")
    assert sorted(ArtifactWriter(store, REF).resume_shards("traces")) == [0]


def test_shards_of_another_shard_size_are_not_adopted(tmp_path: Path) -> None:
    """Shard sizes change no fingerprint: an interrupted attempt with 10-row shards must not hand its shard 0
    to a rerun with 40-row shards (the chaos campaign lost 30 rows a shard that way)."""
    store = ArtifactStore(f"file://{tmp_path}/store")
    writer = ArtifactWriter(store, REF)
    writer.write_shard("traces", 0, pa.table({"y": list(range(10))}), layout="10 of 154 rows per shard")
    assert ArtifactWriter(store, REF).resume_shards("traces", "40 of 154 rows per shard") == {}
    assert sorted(ArtifactWriter(store, REF).resume_shards("traces", "10 of 154 rows per shard")) == [0]


def _racing_writer(root: str, value: int, barrier) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    for _ in range(5):  # many writes, so the two writers interleave
        _commit(ArtifactStore(root), value=value)


def test_two_concurrent_writers_of_one_fingerprint_do_not_corrupt_it(tmp_path: Path) -> None:
    root = f"file://{tmp_path}/store"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_racing_writer, args=(root, v, barrier)) for v in (10, 20)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    store = ArtifactStore(root)
    assert store.verify(REF) == []
    problems = store.read_table(REF, "problems").column("x").to_pylist()
    traces = store.read_table(REF, "traces").column("y").to_pylist()
    assert problems in ([10, 11], [20, 21])
    assert traces == [problems[0], problems[0] + 1, problems[0] + 2]  # one writer's files, not a mix


def test_runs_and_named_refs(store: ArtifactStore) -> None:
    store.write_run("r1", {"run_id": "r1", "started_at": "1", "stages": {}})
    store.write_run("r2", {"run_id": "r2", "started_at": "2", "stages": {}})
    assert [r["run_id"] for r in store.list_runs()] == ["r1", "r2"]
    store.tag("toy", "r1")
    store.tag("toy", "r2")
    assert [h["run_id"] for h in store.ref_history("toy")] == ["r1", "r2"]
    with pytest.raises(ArtifactNotFoundError, match="no run 'r9'"):
        store.read_run("r9")


def test_run_ids_resolve_from_unique_prefixes(store: ArtifactStore) -> None:
    for run_id in ("3f2a9c1e-aaaa", "3f2a9c1e-bbbb", "7b00"):
        store.write_run(run_id, {"run_id": run_id, "started_at": "1", "stages": {}})
    assert store.resolve_run("3f2a9c1e-bbbb") == "3f2a9c1e-bbbb"  # a full id
    assert store.resolve_run("3f2a9c1e-a") == "3f2a9c1e-aaaa"
    assert store.resolve_run("7") == "7b00"
    with pytest.raises(AmbiguousRunError, match=r"'3f2a' matches 2 runs.*3f2a9c1e-aaaa, 3f2a9c1e-bbbb"):
        store.resolve_run("3f2a")
    with pytest.raises(ArtifactNotFoundError, match=r"no run 'zz'.*bard artifacts runs"):
        store.resolve_run("zz")
    with pytest.raises(ArtifactNotFoundError, match="no run ''"):
        store.resolve_run("")  # an empty prefix is not "every run"


def test_latest_run_is_the_newest_with_a_committed_stage(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"no run .* has a committed evaluate stage"):
        store.latest_run("evaluate")
    older, newer = ArtifactRef("evaluate", "1" * 20), ArtifactRef("evaluate", "2" * 20)
    for ref in (older, newer):
        writer = ArtifactWriter(store, ref)
        writer.write_bytes("report.md", ref.fingerprint.encode())
        writer.commit(inputs={}, config={}, prompts={})
    runs = [("a", "2025-01-01T00:00:01+00:00", older), ("b", "2025-01-01T00:00:02+00:00", newer)]
    runs += [("c", "2025-01-01T00:00:03+00:00", None)]  # the newest run did not evaluate
    runs += [("d", "2025-01-01T00:00:04+00:00", ArtifactRef("evaluate", "3" * 20))]  # listed, never committed
    for run_id, started, ref in runs:
        stages = {"evaluate": {"artifact": ref.key, "status": "executed"}} if ref else {}
        store.write_run(run_id, {"run_id": run_id, "started_at": started, "stages": stages})
    assert store.latest_run("evaluate")["run_id"] == "b"
    store.remove(newer)
    assert store.latest_run("evaluate")["run_id"] == "a"


def test_s3_credentials_never_show(s3_endpoint: str) -> None:
    store = ArtifactStore("s3://bard-test/creds", endpoint_url=s3_endpoint)
    _commit(store)
    raw = store.cat(store.path(REF, "manifest.json")).decode()
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in raw and secret not in repr(store)
    with pytest.raises(ArtifactNotFoundError) as info:
        store.manifest(ArtifactRef("sample", "0" * 20))
    assert secret not in str(info.value)


def test_a_full_store_volume_is_named_and_leaves_no_partial_file(tmp_path: Path) -> None:
    from bard_pipeline.chaos.storage import MountError, tmpfs
    from bard_pipeline.infra.store import StoreFullError

    try:
        with tmpfs(tmp_path / "volume", 1 << 20) as volume:
            store = ArtifactStore(f"file://{volume}/store")
            writer = ArtifactWriter(store, ArtifactRef("sample", "f" * 20))
            with pytest.raises(StoreFullError, match=rf"no space left on the store file://{volume}/store"):
                writer.write_bytes("big.bin", b"\1" * (2 << 20))
            assert [p.name for p in (volume / "store").rglob("*") if p.is_file()] == []
            assert not store.exists(writer.ref)
    except MountError:
        pytest.skip("mounting a tmpfs needs root")
