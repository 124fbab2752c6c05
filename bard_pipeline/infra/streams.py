"""Chunked, hashed, all-or-nothing file I/O for the artifact store (local folders and S3 via s3fs).

Memory stays bounded by the chunk size whatever the file size: a 16 GB checkpoint goes up and comes down
in ``chunk_bytes`` pieces, hashed as it passes. On S3 a file of at least one chunk goes up as a multipart
upload (a single PUT is refused above 5 GB), one part per chunk; the object appears only when the upload
completes, and a failed write aborts it, so a reader never sees part of a file. Locally a file is written
to a temporary name and renamed into place.

On S3 a request that fails for a moment (throttling, a 5xx, a connection cut, a stall) is retried; each retry is
logged at WARNING and counted (``s3retry.py``), and a writer's count lands in its manifest (``Manifest.io``).

Parquet is parsed from Arrow-owned memory, never from a Python file object: pyarrow's dataset reader may
release its last reference to such an object (``io.BytesIO``, an fsspec file) on one of Arrow's own threads
after the interpreter began to exit; that thread then needs the GIL, Python ends it with ``pthread_exit``
inside a C++ destructor, and the process aborts ("terminate called without an active exception", exit 134).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import pyarrow as pa

DEFAULT_CHUNK_BYTES = 64 * 2**20
"""Default piece size of store reads and writes (and S3 part size): 64 MiB."""
S3_MIN_PART_BYTES = 5 * 2**20  # S3 refuses smaller parts (all but the last)
S3_MAX_PARTS = 10_000  # and more than this many parts in one upload


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ReadableInto(Readable, Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class ReadStream(ReadableInto, Protocol):
    """A file opened for reading, local or S3: chunked reads, used as a context manager."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...


class Writable(Protocol):
    def write(self, data: Any, /) -> int | None: ...


class DigestMismatchError(IOError):
    """The bytes streamed differ from the sha256 they were announced with (the source changed meanwhile)."""


class StoreIOError(OSError):
    """A store request that kept failing through its retries; the message names the file. A write that raises it
    left nothing behind (its upload was aborted)."""


@dataclass(eq=False)  # one tally is one writer's: compared by identity
class IoTally:
    """S3 requests made, and retried, while it was tracked: an artifact's writing (``Manifest.io``)."""

    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "retries": self.retries}


PROCESS_IO = IoTally()
"""This process's store requests and retries, all writers together."""
_TRACKED: ContextVar[tuple[weakref.ref[IoTally], ...]] = ContextVar("bard_store_io", default=())


def track_io(tally: IoTally) -> None:
    """Count the store requests of this context into ``tally`` until ``untrack_io`` (or until it is garbage: a
    writer that failed before its commit). The hooks that count run on fsspec's event-loop thread, in the copy of
    the caller's context that each of its coroutines gets."""
    _TRACKED.set((*(r for r in _TRACKED.get() if r() is not None), weakref.ref(tally)))


def untrack_io(tally: IoTally) -> None:
    _TRACKED.set(tuple(r for r in _TRACKED.get() if (t := r()) is not None and t is not tally))


def count_io(requests: int = 0, retries: int = 0) -> None:
    PROCESS_IO.add(requests, retries)
    for ref in _TRACKED.get():
        if (tally := ref()) is not None:
            tally.add(requests, retries)


def note_retry(operation: str, key: str, cause: str, attempt: int) -> None:
    """A retry, logged at WARNING (the key and the error only, never a request's headers) and counted."""
    logging.getLogger(__name__).warning("store: %s %s failed (%s); retry, attempt %d", operation, key, cause, attempt)
    count_io(retries=1)


def check_chunk_bytes(chunk_bytes: int, s3: bool) -> int:
    """The chunk size, or a clear error for one S3 would refuse."""
    if chunk_bytes < 1 or (s3 and chunk_bytes < S3_MIN_PART_BYTES):
        floor = f"{S3_MIN_PART_BYTES} (5 MiB, S3's smallest part)" if s3 else "1"
        raise ValueError(f"ArtifactStore chunk_bytes={chunk_bytes} is too small: use at least {floor}")
    return chunk_bytes


def stream_digest(handle: Readable, chunk_bytes: int) -> tuple[str, int]:
    """(sha256, size) of what ``handle`` reads from here to its end, in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(handle, chunk_bytes):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def file_digest(path: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[str, int]:
    """(sha256, size) of a local file, read in chunks."""
    with path.open("rb") as handle:
        return stream_digest(handle, chunk_bytes)


def iter_chunks(handle: Readable, chunk_bytes: int) -> Iterator[bytes]:
    while chunk := handle.read(chunk_bytes):
        yield chunk


def copy_hashed(source: Readable, sink: Writable, chunk_bytes: int) -> tuple[str, int]:
    """Copy ``source`` into ``sink`` chunk by chunk; returns (sha256, size) of what was copied."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(source, chunk_bytes):
        digest.update(chunk)
        sink.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def write_chunks(sink: Writable, data: bytes | memoryview, chunk_bytes: int) -> None:
    """Bytes already in memory, written in chunk-sized slices (so that S3 uploads them in parts)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_bytes):
        sink.write(view[start : start + chunk_bytes])


@contextmanager
def atomic_sink(fs: Any, path: str, *, s3: bool, chunk_bytes: int) -> Iterator[Writable]:
    """A writable file that appears at ``path`` whole when the block ends, and not at all if it raises."""
    if s3:
        handle = fs.open(path, "wb", block_size=chunk_bytes)
        try:
            yield _S3Sink(handle, path)
        except BaseException:
            _discard(handle)
            raise
        try:
            handle.close()  # completes the multipart upload (one PUT below a chunk): the object appears
        except Exception as exc:
            if _completed_anyway(fs, handle, exc):
                return
            _discard(handle)
            raise _write_error(path, exc) from exc
        except BaseException:
            _discard(handle)
            raise
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        with tmp.open("wb") as local:
            yield local
        tmp.replace(target)  # atomic on one filesystem
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _S3Sink:
    """An upload's ``write`` (which sends a part once a chunk is buffered), its failures naming the file."""

    def __init__(self, handle: Any, path: str) -> None:
        self.handle, self.path = handle, path

    def write(self, data: Any, /) -> int | None:
        try:
            written: int | None = self.handle.write(data)
        except Exception as exc:
            raise _write_error(self.path, exc) from exc
        return written


def _write_error(path: str, exc: Exception) -> Exception:
    if isinstance(exc, (StoreIOError, DigestMismatchError)):
        return exc
    return StoreIOError(
        f"could not write s3://{path}: {type(exc).__name__}: {exc} (each request was retried; see the store's "
        "warnings); the upload was aborted, nothing was written there"
    )


def _completed_anyway(fs: Any, handle: Any, exc: Exception) -> bool:
    """Whether a multipart completion that failed was in fact done: S3 completed it, the answer was lost (the
    connection cut), and the retry found the upload gone (NoSuchUpload). The object is then in place, whole,
    when its ETag is the one of the parts uploaded (md5 of their md5s, "-" part count)."""
    parts = getattr(handle, "parts", None) or []
    if not getattr(handle, "mpu", None) or not parts or not isinstance(exc, FileNotFoundError):
        return False
    joined = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in parts)
    expected = f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"
    try:
        fs.invalidate_cache(handle.path)
        found = str(fs.info(handle.path).get("ETag", "")).strip('"')
    except Exception:  # the completion's own error is the one to report
        return False
    if found != expected:
        return False
    logging.getLogger(__name__).warning(
        "store: the completion of the upload of s3://%s lost its answer and its retry found the upload done (%s); "
        "the object is in place, whole (ETag %s)", handle.path, exc, found
    )  # fmt: skip
    return True


def _discard(handle: Any) -> None:
    """Abort an S3 upload: its parts are dropped server-side and nothing appears at the key. Best effort: the
    error that got us here is the one to report (an upload left open expires by the bucket's lifecycle rule)."""
    try:
        handle.discard()
    except Exception as exc:
        logging.getLogger(__name__).warning("could not abort the upload of %s: %s", handle.path, exc)
    finally:
        handle.closed = True  # so that garbage collection does not try to complete it


def read_buffer(handle: ReadableInto, size: int, chunk_bytes: int) -> tuple[pa.Buffer, str, int]:
    """A file read into Arrow-owned memory (see module docstring), hashed on the way in.

    Returns (buffer, sha256, bytes read); reads at most ``size`` bytes, plus one to tell a longer file,
    whose size then differs from ``size``."""
    buffer = pa.allocate_buffer(size)
    view = memoryview(buffer).cast("B")
    digest = hashlib.sha256()
    position = 0
    try:
        while position < size:
            read = handle.readinto(view[position : position + chunk_bytes])
            if not read:
                break
            digest.update(view[position : position + read])
            position += read
    finally:
        view.release()
    if position == size and handle.read(1):
        return buffer, digest.hexdigest(), size + 1  # longer than recorded: the caller reports a mismatch
    return buffer, digest.hexdigest(), position


def part_bytes(chunk_bytes: int, size: int) -> int:
    """The piece size for a file of ``size`` bytes: the chunk, or for a file that 10,000 chunks would not
    hold (640 GiB at 64 MiB), the smallest whole MiB that fits it into S3's 10,000 parts."""
    needed = -(-size // S3_MAX_PARTS)
    return max(chunk_bytes, -(-needed // 2**20) * 2**20)
