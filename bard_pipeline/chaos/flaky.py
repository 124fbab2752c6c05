"""A whole ``bard run`` on S3 through the fault-injecting proxy (``s3proxy.py``): 503 SlowDown, 500, connection
resets mid-body and stalls on ``plan.rate`` of the requests. The run must complete, every manifest verify, its
rows be the clean run's, and the store's retries be counted in the manifests (``io``), none silent.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

from bard_pipeline.chaos.drivers import CleanRun
from bard_pipeline.chaos.report import Fault, TrialResult
from bard_pipeline.chaos.rows import diff, run_rows
from bard_pipeline.chaos.s3proxy import FAULT_KINDS, FaultPlan, FaultyS3Proxy
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore


def flaky_s3(clean: CleanRun, workdir: Path, s3_endpoint: str, bucket: str, plan: FaultPlan) -> TrialResult:
    """``s3_endpoint``: a real S3 API with ``bucket`` (credentials in the environment)."""
    root = f"s3://{bucket}/chaos-{uuid.uuid4().hex[:8]}"
    with FaultyS3Proxy(s3_endpoint, plan) as proxy:
        local = clean.launch(workdir, workdir / "flaky.log", (f"store.endpoint_url={proxy.url}",))
        launch = replace(local, store_root=root)  # the bucket, not a local folder
        t0 = time.monotonic()
        code = launch.run()
        wall_s = time.monotonic() - t0
        counts = proxy.counts()
        store = ArtifactStore(root, proxy.url)
        records = [r for r in store.list_runs() if r.get("status") == "completed"] if code == 0 else []
        if not records:
            return TrialResult(Fault.FLAKY_S3, False, recovery_s=wall_s, detail=f"run exit {code}; see {launch.log}")
        record = records[-1]
        refs = [ArtifactRef.parse(info["artifact"]) for info in record["stages"].values()]
        damaged = [ref.key for ref in refs if store.verify(ref)]
        manifests = [store.manifest(ref) for ref in refs]
        rows = diff(clean.expected(), run_rows(store, record))
    retries = sum(m.io.get("retries", 0) for m in manifests)
    faults = sum(counts.get(kind, 0) for kind in FAULT_KINDS)
    problems = [f"do not verify: {damaged}"] if damaged else []
    problems += ["no retry counted in the manifests"] if faults and not retries else []
    detail = f"{faults} faults in {counts.get('requests', 0)} requests, {retries} retries in the manifests"
    return TrialResult(Fault.FLAKY_S3, not problems and rows.equal, rows.lost, rows.duplicated, wall_s,
                       detail="; ".join([detail, *problems]))  # fmt: skip
