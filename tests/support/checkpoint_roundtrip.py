"""Store a local checkpoint folder as an artifact and fetch it back; print peak memory and timings as JSON.

Run as its own process, so that its peak RSS is that of the transfer alone:
``python -m tests.support.checkpoint_roundtrip STORE_URL ENDPOINT CHUNK_BYTES SOURCE_DIR DEST_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter

REF = ArtifactRef("sft", "c" * 20)


def peak_rss_bytes() -> int:
    """This process's own peak RSS (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux carries that over
    ``fork`` + ``exec``, so a child of a large parent (a long pytest session) starts at the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main(root: str, endpoint: str, chunk_bytes: str, source: str, dest: str) -> None:
    store = ArtifactStore(root, endpoint or None, chunk_bytes=int(chunk_bytes))
    baseline = peak_rss_bytes()  # imports done: the floor
    start = time.perf_counter()
    writer = ArtifactWriter(store, REF)
    writer.write_dir("model", Path(source))
    manifest = writer.commit(inputs={}, config={}, prompts={})
    uploaded = time.perf_counter()
    store.fetch_dir(REF, Path(dest), prefix="model")  # verifies each file's sha256 as it streams
    report = {
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak_rss_bytes(),
        "upload_s": round(uploaded - start, 1),
        "download_s": round(time.perf_counter() - uploaded, 1),
        "files": {e.name: {"sha256": e.sha256, "bytes": e.bytes, "path": e.path} for e in manifest.files},
        "object": store.path(REF),
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:6])
