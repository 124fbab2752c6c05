"""Run records, named refs and small documents of a store: ``<root>/runs/``, ``<root>/refs/`` and JSON documents
(watcher state, teachers). A mixin of ``ArtifactStore``, which provides the byte-level I/O it uses."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any


class ArtifactNotFoundError(FileNotFoundError):
    """No committed artifact (no manifest) at this address."""


class AmbiguousRunError(LookupError):
    """A run id prefix that matches more than one recorded run."""


class RunRecords:
    """Runs, refs and documents under the store root (``ArtifactStore`` provides the attributes below)."""

    root: str
    _base: str
    fs: Any

    def cat(self, path: str) -> bytes:
        raise NotImplementedError

    def put_atomic(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def committed_key(self, key: str) -> bool:
        raise NotImplementedError

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
            if key and self.committed_key(key):  # a removed artifact no longer counts
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
