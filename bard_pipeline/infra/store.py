"""The artifact store: content-addressed, immutable artifacts over fsspec (``file://`` and ``s3://``).

Layout under the root URL::

    <root>/<stage>/<fingerprint>/manifest.json            commit marker, written last
    <root>/<stage>/<fingerprint>/<name>.<sha16><ext>      files, named by their content hash
    <root>/<stage>/<fingerprint>/shards/<table>-<i>.<sha16>.parquet
    <root>/runs/<run_id>.json                             run manifests
    <root>/refs/<name>/<utc time>-<run_id>.json           named refs, append-only history

Physical file names carry their content hash, so a path never changes content: two writers of the
same fingerprint cannot corrupt each other's files, and whichever manifest lands is consistent with
the files it lists. Logical names (``problems.parquet``) live in the manifest; readers use those,
and every read checks the sha256.

Files move in chunks of ``chunk_bytes`` (``streams.py``): a checkpoint of any size is uploaded, downloaded
and verified with memory bounded by the chunk, as an S3 multipart upload (one part per chunk) that appears
only when complete. Readers of a notebook use ``bard_pipeline.api``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from bard_core.manifest import MANIFEST_NAME, FileEntry, Manifest
from bard_pipeline.infra.store_records import AmbiguousRunError, ArtifactNotFoundError, RunRecords

__all__ = ["AmbiguousRunError", "ArtifactNotFoundError", "ArtifactRef", "ArtifactStore", "ChecksumMismatchError"]
from bard_pipeline.infra.streams import (
    DEFAULT_CHUNK_BYTES,
    DigestMismatchError,
    ReadStream,
    atomic_sink,
    check_chunk_bytes,
    copy_hashed,
    part_bytes,
    read_buffer,
    stream_digest,
    write_chunks,
)

_HASH_CHARS = 16
_SHARD = re.compile(r"^shards/(?P<table>[\w-]+)-(?P<index>\d{5})\.(?P<sha>[0-9a-f]{16})\.parquet$")


class ChecksumMismatchError(IOError):
    """A file's bytes differ from what its manifest recorded."""


class StoreFullError(OSError):
    """The store's volume (or quota) is full: the write was abandoned and nothing was committed."""


@dataclass(frozen=True)
class ArtifactRef:
    """Address of an artifact: ``<stage>/<fingerprint>`` under a store root."""

    stage: str
    fingerprint: str

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.fingerprint}"

    @classmethod
    def parse(cls, key: str) -> ArtifactRef:
        stage, sep, fp = key.strip("/").partition("/")
        if not sep or not stage or not fp or "/" in fp:
            raise ValueError(f"artifact reference {key!r} is not STAGE/FINGERPRINT (e.g. sample/3f2a9c...)")
        return cls(stage, fp)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table_to_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()  # Arrow's own stream, not a Python file object (see streams.py)
    pq.write_table(table, sink, compression="zstd")
    data: bytes = sink.getvalue().to_pybytes()
    return data


S3_READ_TIMEOUT_S = 120
"""How long a request may wait for the server's answer. s3fs's 15 s is too short for completing a
multipart upload of many GB on S3-compatible servers that send nothing meanwhile (AWS sends keep-alive
whitespace); a retried completion then fails, the first one having consumed the upload."""


def storage_options(root: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a root. S3 credentials are left to botocore's own chain (env, profile)."""
    if root.startswith("s3://"):
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        from bard_pipeline.infra.s3retry import S3_MAX_ATTEMPTS  # s3fs: imported for S3 roots only

        config: dict[str, Any] = {"read_timeout": S3_READ_TIMEOUT_S}
        if not {"AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"} & os.environ.keys():  # botocore's own settings win
            config["retries"] = {"mode": "standard", "total_max_attempts": S3_MAX_ATTEMPTS}
        options: dict[str, Any] = {"config_kwargs": config}
        return {**options, "client_kwargs": {"endpoint_url": endpoint}} if endpoint else options
    return {}


def _absolute_root(root: str) -> str:
    if root.startswith("file://"):
        return "file://" + str(Path(root[len("file://") :]).expanduser().resolve())
    return root.rstrip("/")


class ArtifactStore(RunRecords):
    """One API over local folders and S3 buckets (see module docstring for the layout).

    ``chunk_bytes`` is the piece size of every read and write (and the S3 part size, at least 5 MiB there):
    what a transfer holds in memory, whatever the file size."""

    def __init__(self, root: str, endpoint_url: str | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.root = _absolute_root(root)
        self.endpoint_url = endpoint_url
        self.s3 = self.root.startswith("s3://")
        self.chunk_bytes = check_chunk_bytes(chunk_bytes, self.s3)
        if self.s3:  # retries counted and logged (s3retry.py)
            from bard_pipeline.infra.s3retry import StoreS3FileSystem

            self.fs = StoreS3FileSystem(**storage_options(self.root, endpoint_url))
            base = self.fs._strip_protocol(self.root)
        else:
            self.fs, base = fsspec.core.url_to_fs(self.root, **storage_options(self.root, endpoint_url))
        self._base = base.rstrip("/")
        if self.root.startswith("file://"):
            self.fs.makedirs(self._base, exist_ok=True)

    def __repr__(self) -> str:  # never shows credentials: they are not held here
        return f"ArtifactStore({self.root!r})"

    # ------------------------------------------------------------------ paths

    def path(self, ref: ArtifactRef, name: str = "") -> str:
        return "/".join(p for p in (self._base, ref.stage, ref.fingerprint, name) if p)

    def uri(self, ref: ArtifactRef, name: str = "") -> str:
        return "/".join(p for p in (self.root, ref.stage, ref.fingerprint, name) if p)

    # ------------------------------------------------------------------ raw I/O

    def put_atomic(self, path: str, data: bytes) -> None:
        """Write all-or-nothing: a temp file renamed into place locally; on S3 one PUT, or a multipart upload
        from one chunk up."""
        with self._space_for(path), atomic_sink(self.fs, path, s3=self.s3, chunk_bytes=self.chunk_bytes) as sink:
            write_chunks(sink, data, self.chunk_bytes)

    @contextmanager
    def _space_for(self, path: str) -> Iterator[None]:
        """A full disk (or quota) named as the store's, with what to do; the write left nothing behind."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or isinstance(exc, StoreFullError):
                raise
            raise StoreFullError(
                exc.errno,
                f"no space left on the store {self.root} (writing {path}); nothing was committed: free space "
                "there, or point store.root at a larger volume, and rerun (finished stages are kept)",
            ) from exc

    def put_file(self, path: str, source: Path, sha256: str | None = None) -> tuple[str, int]:
        """Stream a local file to ``path`` all-or-nothing, hashing on the way; returns (sha256, size).

        With ``sha256`` given (the name was derived from it), a source that changed meanwhile is not
        committed: the write is abandoned and ``DigestMismatchError`` raised."""
        piece = part_bytes(self.chunk_bytes, source.stat().st_size)
        with (
            self._space_for(path),
            source.open("rb") as handle,
            atomic_sink(self.fs, path, s3=self.s3, chunk_bytes=piece) as sink,
        ):
            digest, size = copy_hashed(handle, sink, piece)
            if sha256 is not None and digest != sha256:
                raise DigestMismatchError(
                    f"{source} changed while it was being stored (sha256 {digest[:16]}…, expected "
                    f"{sha256[:16]}…); nothing was written to {path}: store it again once it is complete"
                )
        return digest, size

    def cat(self, path: str) -> bytes:
        """A whole (small) file: manifests, run records, documents. Large files stream (``open_read``)."""
        if self.s3:
            from bard_pipeline.infra.s3retry import retrying

            return retrying(lambda: bytes(self.fs.cat_file(path)), "GetObject", path)
        data: bytes = self.fs.cat_file(path)
        return data

    def open_read(self, path: str) -> ReadStream:
        """A file opened for sequential chunked reads (on S3 one ranged GET per read, no read-ahead cache, each
        read again when its answer is cut)."""
        if self.s3:
            from bard_pipeline.infra.s3retry import RetryingReader, retrying

            open_ = self.fs.open
            handle: ReadStream = retrying(lambda: open_(path, "rb", block_size=self.chunk_bytes, cache_type="none"),
                                          "HeadObject", path)  # fmt: skip
            return RetryingReader(handle, path)
        return Path(path).open("rb")  # the caller closes it

    # ------------------------------------------------------------------ artifacts

    def committed_key(self, key: str) -> bool:
        """Whether the artifact ``<stage>/<fingerprint>`` is committed (a run record's entry, say)."""
        return self.exists(ArtifactRef.parse(key))

    def exists(self, ref: ArtifactRef) -> bool:
        return bool(self.fs.exists(self.path(ref, MANIFEST_NAME)))

    def manifest(self, ref: ArtifactRef) -> Manifest:
        try:
            raw = self.cat(self.path(ref, MANIFEST_NAME))
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"no artifact {ref.key} in {self.root} (no manifest: never committed, or still being written); "
                "run the stage that produces it, or check the store root"
            ) from None
        return Manifest.model_validate_json(raw)

    def list(self, stage: str | None = None) -> list[Manifest]:
        pattern = f"{self._base}/{stage or '*'}/*/{MANIFEST_NAME}"
        manifests = [Manifest.model_validate_json(self.cat(p)) for p in self.fs.glob(pattern)]
        return sorted(manifests, key=lambda m: m.created_at)

    def read_bytes(self, ref: ArtifactRef, entry: FileEntry) -> bytes:
        """A small file's verified bytes (a report, a JSON log). Tables: ``read_table``; large files:
        ``fetch_file``."""
        data: bytes = self.read_buffer(ref, entry).to_pybytes()
        return data

    def read_buffer(self, ref: ArtifactRef, entry: FileEntry) -> pa.Buffer:
        """A file read in chunks into Arrow-owned memory and verified against its manifest entry."""
        with self._open_entry(ref, entry) as handle:
            buffer, digest, size = read_buffer(handle, entry.bytes, self.chunk_bytes)
        self._check(ref, entry, digest, size)
        return buffer

    def read_file(self, ref: ArtifactRef, name: str) -> bytes:
        return self.read_bytes(ref, self.manifest(ref).file(name))

    def read_parquet(self, ref: ArtifactRef, entry: FileEntry) -> pa.Table:
        """One Parquet file, verified, parsed from Arrow memory (never from a Python file object: see
        ``streams.py`` for the crash at exit that avoids)."""
        return pq.read_table(pa.BufferReader(self.read_buffer(ref, entry)))

    def read_table(self, ref: ArtifactRef, name: str) -> pa.Table:
        """A table by logical name: one file (``problems.parquet``) or all shards of ``name``."""
        manifest = self.manifest(ref)
        shards = sorted((f for f in manifest.files if f.name.startswith(f"shards/{name}-")), key=lambda f: f.name)
        if shards:
            tables = [self.read_parquet(ref, f).replace_schema_metadata(None) for f in shards]
            return pa.concat_tables(tables, promote_options="default")
        return self.read_parquet(ref, manifest.file(f"{name}.parquet"))

    def fetch_file(self, ref: ArtifactRef, entry: FileEntry, target: Path) -> Path:
        """Stream one file to ``target`` (a temp name, renamed once verified: a damaged file never lands)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
        try:
            with self._open_entry(ref, entry) as handle, tmp.open("wb") as sink:
                digest, size = copy_hashed(handle, sink, self.chunk_bytes)
            self._check(ref, entry, digest, size)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def fetch_dir(self, ref: ArtifactRef, dest: Path, prefix: str = "") -> Path:
        """Download (and verify) files under ``prefix`` to ``dest`` with their logical names, file to file."""
        for entry in self.manifest(ref).files:
            if entry.name.startswith(prefix):
                self.fetch_file(ref, entry, dest / entry.name[len(prefix) :].lstrip("/"))
        return dest

    def verify(self, ref: ArtifactRef) -> list[str]:
        """Problems with an artifact (empty when every listed file is present and intact); streams each file."""
        problems = []
        for entry in self.manifest(ref).files:
            try:
                with self._open_entry(ref, entry) as handle:
                    digest, size = stream_digest(handle, self.chunk_bytes)
                self._check(ref, entry, digest, size)
            except ChecksumMismatchError as exc:
                problems.append(str(exc))
        return problems

    def _open_entry(self, ref: ArtifactRef, entry: FileEntry) -> ReadStream:
        try:
            return self.open_read(self.path(ref, entry.path))
        except FileNotFoundError:
            raise ChecksumMismatchError(
                f"{self.uri(ref, entry.path)} is listed in the manifest but missing; the artifact is damaged: "
                f"remove it (bard artifacts rm {ref.key}) and rerun its stage"
            ) from None

    def _check(self, ref: ArtifactRef, entry: FileEntry, digest: str, size: int) -> None:
        if digest != entry.sha256 or size != entry.bytes:
            raise ChecksumMismatchError(
                f"{self.uri(ref, entry.path)}: sha256 {digest[:16]}… ({size} bytes) does not match the "
                f"manifest's {entry.sha256[:16]}… ({entry.bytes} bytes); the file changed after commit. Remove "
                f"the artifact (bard artifacts rm {ref.key}) and rerun its stage"
            )

    def remove(self, ref: ArtifactRef) -> None:
        """Delete an artifact: the manifest first, so it stops existing before its files go."""
        self.fs.rm(self.path(ref, MANIFEST_NAME))
        self.fs.rm(self.path(ref), recursive=True)

    def shard_files(self, ref: ArtifactRef) -> Iterator[tuple[str, int, str]]:
        """(table, index, path) of shard files present (committed or not) under an artifact."""
        base = self.path(ref)
        for path in self.fs.glob(f"{base}/shards/*.parquet"):
            rel = path[len(base) + 1 :] if path.startswith(base) else path.split(f"{ref.fingerprint}/", 1)[-1]
            match = _SHARD.match(rel)
            if match:
                yield match["table"], int(match["index"]), rel


def physical_name(name: str, digest: str) -> str:
    """``tokenizer/tokenizer.json`` + sha -> ``tokenizer/tokenizer.<sha16>.json``."""
    parent, _, filename = name.rpartition("/")
    stem, dot, ext = filename.partition(".")
    physical = f"{stem}.{digest[:_HASH_CHARS]}{dot}{ext}" if dot else f"{stem}.{digest[:_HASH_CHARS]}"
    return f"{parent}/{physical}" if parent else physical


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
