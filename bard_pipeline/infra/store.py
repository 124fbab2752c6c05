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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from bard_core.manifest import MANIFEST_NAME, FileEntry, Manifest

_HASH_CHARS = 16
_SHARD = re.compile(r"^shards/(?P<table>[\w-]+)-(?P<index>\d{5})\.(?P<sha>[0-9a-f]{16})\.parquet$")


class ArtifactNotFoundError(FileNotFoundError):
    """No committed artifact (no manifest) at this address."""


class ChecksumMismatchError(IOError):
    """A file's bytes differ from what its manifest recorded."""


class AmbiguousRunError(LookupError):
    """A run id prefix that matches more than one recorded run."""


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
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def storage_options(root: str, endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for a root. S3 credentials are left to botocore's own chain (env, profile)."""
    if root.startswith("s3://"):
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return {}


def _absolute_root(root: str) -> str:
    if root.startswith("file://"):
        return "file://" + str(Path(root[len("file://") :]).expanduser().resolve())
    return root.rstrip("/")


class ArtifactStore:
    """One API over local folders and S3 buckets (see module docstring for the layout)."""

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        self.root = _absolute_root(root)
        self.endpoint_url = endpoint_url
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
        """Write all-or-nothing: a temp file renamed into place locally; a single PUT on S3."""
        if self.root.startswith("s3://"):
            self.fs.pipe_file(path, data)
            return
        self.fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)  # atomic on one filesystem

    def cat(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(path)
        return data

    # ------------------------------------------------------------------ artifacts

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
        path = self.path(ref, entry.path)
        try:
            data = self.cat(path)
        except FileNotFoundError:
            raise ChecksumMismatchError(
                f"{self.uri(ref, entry.path)} is listed in the manifest but missing; the artifact is damaged: "
                f"remove it (bard artifacts rm {ref.key}) and rerun its stage"
            ) from None
        digest = sha256_bytes(data)
        if digest != entry.sha256:
            raise ChecksumMismatchError(
                f"{self.uri(ref, entry.path)}: sha256 {digest[:16]}… does not match the manifest's "
                f"{entry.sha256[:16]}…; the file changed after commit. Remove the artifact "
                f"(bard artifacts rm {ref.key}) and rerun its stage"
            )
        return data

    def read_file(self, ref: ArtifactRef, name: str) -> bytes:
        return self.read_bytes(ref, self.manifest(ref).file(name))

    def read_table(self, ref: ArtifactRef, name: str) -> pa.Table:
        """A table by logical name: one file (``problems.parquet``) or all shards of ``name``."""
        manifest = self.manifest(ref)
        shards = sorted((f for f in manifest.files if f.name.startswith(f"shards/{name}-")), key=lambda f: f.name)
        if shards:
            tables = [pq.read_table(io.BytesIO(self.read_bytes(ref, f))).replace_schema_metadata(None) for f in shards]
            return pa.concat_tables(tables, promote_options="default")
        return pq.read_table(io.BytesIO(self.read_bytes(ref, manifest.file(f"{name}.parquet"))))

    def fetch_dir(self, ref: ArtifactRef, dest: Path, prefix: str = "") -> Path:
        """Download (and verify) files under ``prefix`` to ``dest`` with their logical names."""
        for entry in self.manifest(ref).files:
            if not entry.name.startswith(prefix):
                continue
            target = dest / entry.name[len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_bytes(ref, entry))
        return dest

    def verify(self, ref: ArtifactRef) -> list[str]:
        """Problems with an artifact (empty when every listed file is present and intact)."""
        problems = []
        for entry in self.manifest(ref).files:
            try:
                self.read_bytes(ref, entry)
            except ChecksumMismatchError as exc:
                problems.append(str(exc))
        return problems

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

    # ------------------------------------------------------------------ runs and refs

    def write_run(self, run_id: str, record: dict[str, Any]) -> str:
        path = f"{self._base}/runs/{run_id}.json"
        self.put_atomic(path, json.dumps(record, indent=2, sort_keys=True).encode())
        return f"{self.root}/runs/{run_id}.json"

    def read_run(self, run_id: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.cat(f"{self._base}/runs/{run_id}.json"))
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"no run {run_id!r} in {self.root}; list runs with `bard artifacts runs`"
            ) from None
        return data

    def list_runs(self) -> list[dict[str, Any]]:
        runs = [json.loads(self.cat(p)) for p in self.fs.glob(f"{self._base}/runs/*.json")]
        return sorted(runs, key=lambda r: r.get("started_at", ""))

    def resolve_run(self, run: str) -> str:
        """The full id of a run given as its full id or a unique prefix of it (ids are long UUIDs)."""
        if run and self.fs.exists(f"{self._base}/runs/{run}.json"):
            return run  # an exact id needs no listing (and a full id is also a prefix of nothing else)
        ids = [PurePosixPath(p).stem for p in self.fs.glob(f"{self._base}/runs/*.json")]
        matches = sorted(i for i in ids if run and i.startswith(run))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ArtifactNotFoundError(
                f"no run {run!r} (as id or id prefix) in {self.root}; list runs with `bard artifacts runs`"
            )
        raise AmbiguousRunError(
            f"run id prefix {run!r} matches {len(matches)} runs in {self.root}: {', '.join(matches)}; "
            "give more characters"
        )

    def latest_run(self, stage: str) -> dict[str, Any]:
        """The newest run (by its start time) whose ``stage`` artifact is committed, e.g. the newest evaluation."""
        for record in reversed(self.list_runs()):
            key = record.get("stages", {}).get(stage, {}).get("artifact")
            if key and self.exists(ArtifactRef.parse(key)):  # a removed artifact no longer counts
                return record
        raise ArtifactNotFoundError(
            f"no run in {self.root} has a committed {stage} stage; list runs with `bard artifacts runs`"
        )

    def tag(self, name: str, run_id: str) -> None:
        """Point a named ref at a run; history is append-only (one file per move)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        payload = {"name": name, "run_id": run_id, "at": stamp}
        self.put_atomic(f"{self._base}/refs/{name}/{stamp}-{run_id}.json", json.dumps(payload).encode())

    # ------------------------------------------------------------------ small documents (watcher state, teachers)

    def put_document(self, relpath: str, value: Any) -> str:
        """A JSON document at ``<root>/<relpath>`` (written atomically); returns its URI."""
        self.put_atomic(f"{self._base}/{relpath}", json.dumps(value, indent=2, sort_keys=True).encode())
        return f"{self.root}/{relpath}"

    def get_document(self, relpath: str, default: Any = None) -> Any:
        try:
            return json.loads(self.cat(f"{self._base}/{relpath}"))
        except FileNotFoundError:
            return default

    def list_documents(self, prefix: str) -> dict[str, bytes]:
        """Relative path -> bytes of every ``*.json`` under ``<root>/<prefix>/``."""
        found = sorted(self.fs.glob(f"{self._base}/{prefix.strip('/')}/*.json"))
        return {p[len(self._base) + 1 :]: self.cat(p) for p in found}

    def ref_history(self, name: str) -> list[dict[str, Any]]:
        paths = sorted(self.fs.glob(f"{self._base}/refs/{name}/*.json"))
        return [json.loads(self.cat(p)) for p in paths]


def physical_name(name: str, digest: str) -> str:
    """``tokenizer/tokenizer.json`` + sha -> ``tokenizer/tokenizer.<sha16>.json``."""
    parent, _, filename = name.rpartition("/")
    stem, dot, ext = filename.partition(".")
    physical = f"{stem}.{digest[:_HASH_CHARS]}{dot}{ext}" if dot else f"{stem}.{digest[:_HASH_CHARS]}"
    return f"{parent}/{physical}" if parent else physical


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
