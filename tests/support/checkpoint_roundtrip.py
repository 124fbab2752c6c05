"""Store a local checkpoint folder as an artifact and fetch it back; print peak memory and timings as JSON.

Run as its own process, so that its peak RSS is that of the transfer alone:
``python -m tests.support.checkpoint_roundtrip STORE_URL ENDPOINT CHUNK_BYTES SOURCE_DIR DEST_DIR``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.infra.writer import ArtifactWriter

REF = ArtifactRef("sft", "c" * 20)


def main(root: str, endpoint: str, chunk_bytes: str, source: str, dest: str) -> None:
    store = ArtifactStore(root, endpoint or None, chunk_bytes=int(chunk_bytes))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # imports done: the floor
    start = time.perf_counter()
    writer = ArtifactWriter(store, REF)
    writer.write_dir("model", Path(source))
    manifest = writer.commit(inputs={}, config={}, prompts={})
    uploaded = time.perf_counter()
    store.fetch_dir(REF, Path(dest), prefix="model")  # verifies each file's sha256 as it streams
    report = {
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
        "upload_s": round(uploaded - start, 1),
        "download_s": round(time.perf_counter() - uploaded, 1),
        "files": {e.name: {"sha256": e.sha256, "bytes": e.bytes, "path": e.path} for e in manifest.files},
        "object": store.path(REF),
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:6])
