"""Faults of the store's disk: it fills up mid-stage, or a committed file's bytes change afterwards.

Full disk: the store lives on a small tmpfs (``mount -t tmpfs``: root only; elsewhere the trial is reported as
not run) holding the clean run's artifacts before ``stage``, filled to within ``headroom_bytes`` as ``stage``
starts; the stage must fail naming the store and "no space", commit no manifest, and a rerun after space is freed
completes.
Corruption: one byte flipped in a committed file; reading it fails naming the file, ``bard artifacts verify``
finds it, and ``bard artifacts rm`` + a rerun restore the artifact.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bard_pipeline.chaos.drivers import CleanRun, seed_store
from bard_pipeline.chaos.harness import RUN_TIMEOUT_S, TrialError, completed_rows, store_scratch, wait_for
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.rows import diff
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore, ChecksumMismatchError


class MountError(RuntimeError):
    """A tmpfs could not be mounted here (not root, or no mount permission in this container)."""


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        raise MountError(f"mount -t tmpfs {path}: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(volume: Path, headroom_bytes: int) -> Path:
    """A filler file that leaves ``headroom_bytes`` free on ``volume``."""
    filler = volume / "filler.bin"
    free = shutil.disk_usage(volume).free - headroom_bytes
    with filler.open("wb") as handle:
        while free > 0:
            piece = min(free, 1 << 20)
            handle.write(b"\0" * piece)
            free -= piece
    return filler


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def full_disk(clean: CleanRun, stage: str, workdir: Path, headroom_bytes: int = 4 << 10) -> TrialResult:
    """The store's volume full during ``stage``; the error, nothing committed, and the rerun once freed."""
    volume = workdir / "volume"
    size = _tree_bytes(clean.store_dir) * 2 + (16 << 20)
    try:
        with tmpfs(volume, size):
            store_dir = volume / "store"
            seed_store(clean, store_dir, stage)
            first = clean.launch(store_dir, workdir / "full.log")
            proc = first.start()
            try:
                wait_for(proc, first.log, f"{stage}: building")  # the disk fills as the stage starts writing
            except TrialError as exc:
                return TrialResult(Fault.FULL_DISK, False, detail=f"{stage}: {exc}")
            filler = _fill(volume, headroom_bytes)
            code = proc.wait(timeout=RUN_TIMEOUT_S)
            text = first.log_text().lower()
            store = ArtifactStore(f"file://{store_dir}")
            committed = [m.stage for m in store.list() if m.stage == stage]
            named = "no space" in text and str(store_dir).lower() in text
            problems = [] if code != 0 else ["the run did not fail"]
            problems += [] if named else ["no error naming the store and 'no space'"]
            problems += [f"{stage} committed on a full disk"] if committed else []
            filler.unlink()
            t0 = time.monotonic()
            rerun = clean.launch(store_dir, workdir / "rerun.log")
            if rerun.run() != 0:
                problems.append(f"rerun after freeing space failed (see {rerun.log})")
                return TrialResult(Fault.FULL_DISK, False, recovery_s=time.monotonic() - t0, detail="; ".join(problems))
            recovery_s = time.monotonic() - t0
            rows = diff(clean.expected(), completed_rows(store))
            problems += [f"scratch left: {s}" for s in store_scratch(store_dir)[:1]]
    except MountError as exc:
        return TrialResult(Fault.FULL_DISK, False, detail=f"not run: {exc}")
    survived = not problems and rows.equal
    return TrialResult(Fault.FULL_DISK, survived, rows.lost, rows.duplicated, recovery_s,
                       detail="; ".join([f"{stage}", *problems]))  # fmt: skip


def flip_byte(path: Path, rng: random.Random) -> int:
    data = bytearray(path.read_bytes())
    offset = rng.randrange(len(data))
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return offset


def corruption(clean: CleanRun, stage: str, workdir: Path, rng: random.Random) -> TrialResult:
    """A byte flipped in one committed file of ``stage`` (a shard, a checkpoint's weights, ...)."""
    store_dir = workdir / "store"
    shutil.copytree(clean.store_dir, store_dir)
    store = ArtifactStore(f"file://{store_dir}")
    manifest = next(m for m in store.list(stage))
    ref = ArtifactRef(manifest.stage, manifest.fingerprint)
    entry = max(manifest.files, key=lambda f: f.bytes)  # the shard or weights file, not a small JSON
    flip_byte(Path(store.path(ref, entry.path)), rng)
    problems = []
    try:
        store.fetch_file(ref, entry, workdir / "read" / entry.name)
        problems.append("the flipped file was read without an error")
    except ChecksumMismatchError as exc:
        problems += [] if entry.path in str(exc) else [f"the read error does not name the file: {exc}"]
    verify = _bard("artifacts", "verify", "--store", f"file://{store_dir}")
    if verify.returncode == 0 or entry.path not in verify.stdout:
        problems.append(f"`bard artifacts verify` did not report {entry.path} (exit {verify.returncode})")
    t0 = time.monotonic()
    removed = _bard("artifacts", "rm", ref.key, "--store", f"file://{store_dir}")
    rerun = clean.launch(store_dir, workdir / "rerun.log")
    if removed.returncode != 0 or rerun.run() != 0:
        return TrialResult(Fault.CORRUPTION, False, detail=f"{stage}: rm exit {removed.returncode}; rerun failed")
    recovery_s = time.monotonic() - t0
    if store.verify(ref):
        problems.append("the rebuilt artifact does not verify")
    rows = diff(clean.expected(), completed_rows(store))
    return TrialResult(Fault.CORRUPTION, not problems and rows.equal, rows.lost, rows.duplicated, recovery_s,
                       detail="; ".join([f"{stage} {entry.name}", *problems]))  # fmt: skip


def _bard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bard_pipeline.flows.cli", *args],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})  # fmt: skip
