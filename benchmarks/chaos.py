"""The chaos campaign: faults a cluster will have, injected into real `bard run`s, and what survived.

One clean run of RECIPE is the reference; every trial's rows are checked against it (same fingerprints, same rows
by key). Prints one line per trial as it ends, then the table, and as its last line the totals:
`trials=N survived=N failed=N lost=N duplicated=N secret_hits=N`.

    .venv/bin/python benchmarks/chaos.py                                  # every fault, the campaign's sizes
    .venv/bin/python benchmarks/chaos.py --faults killed-driver --trials 20 --recipe configs/smoke.yaml
    .venv/bin/python benchmarks/chaos.py --trials killed-driver=20,lost-node=1 --clean-store .bard/store

Runs write their logs under --workdir (kept with --keep). Full disk mounts a tmpfs: it needs root. Smallest size
(tests/benchmarks): `--clean-store STORE --faults bad-input --bad-input-examples 20`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bard_pipeline.infra.env import apply_defaults  # noqa: E402

apply_defaults()

from bard_pipeline.chaos.campaign import Fault, Plan, run_campaign  # noqa: E402
from bard_pipeline.chaos.cluster import NodeTarget  # noqa: E402
from bard_pipeline.chaos.drivers import CleanRun  # noqa: E402
from bard_pipeline.chaos.report import TrialResult, render  # noqa: E402
from bard_pipeline.chaos.server import StackTarget  # noqa: E402
from bard_pipeline.flows.stack_cli import start_server  # noqa: E402

DEFAULT_TRIALS = {Fault.KILLED_DRIVER: 20, Fault.LOST_NODE: 2, Fault.FLAKY_S3: 2, Fault.CONCURRENT_RUNS: 2,
                  Fault.SERVER_RESTART: 2, Fault.FULL_DISK: 2, Fault.CORRUPTION: 2, Fault.SECRETS: 1,
                  Fault.BAD_INPUT: 1}  # fmt: skip


@contextmanager
def two_nodes(root: Path) -> Iterator[NodeTarget]:
    """A head and a worker node on 127.0.0.1 (tests/support/ray_cluster.py), the worker the one to lose."""
    from tests.support.ray_cluster import two_node_cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"  # the cluster runs without token auth; so do the runs joining it
    with two_node_cluster(root) as cluster:
        yield NodeTarget(cluster.gcs_address, cluster.kill_worker_node, cluster.actors_on_worker)


def _local_s3_credentials() -> None:
    """Credentials for a local S3 server (it takes any), unless the environment has some."""
    for key, value in (("AWS_ACCESS_KEY_ID", "chaos"), ("AWS_SECRET_ACCESS_KEY", "chaos-secret"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        os.environ.setdefault(key, value)


@contextmanager
def s3_server(root: Path) -> Iterator[tuple[str, str]]:
    """moto's S3 server on 127.0.0.1 with a bucket (any credentials: set, unless the environment has some)."""
    import boto3

    from bard_pipeline.infra.stack import Stack, free_port

    _local_s3_credentials()
    port, stack = free_port(), Stack(root)
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    try:
        stack.start("s3", command, dict(os.environ), port, f"{endpoint}/moto-api/")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bard-chaos")
        yield endpoint, "bard-chaos"
    finally:
        stack.stop()


@contextmanager
def local_stack(root: Path, recipe: str) -> Iterator[StackTarget]:
    """`bard up --s3` (a Prefect server with its UI, the deployments' serve process, S3), `bard down` at the end."""
    from bard_pipeline.infra.stack import free_port
    from bard_pipeline.infra.store import ArtifactStore

    # This process reads the stack's S3 too: without credentials of its own (set by an earlier flaky-S3 trial)
    # the trial raised NoCredentialsError.
    _local_s3_credentials()
    port, s3_port, state = free_port(), free_port(), root / "stack"
    bard = [sys.executable, "-m", "bard_pipeline.flows.cli"]
    up = [*bard, "up", "--state-dir", str(state), "--port", str(port), "--s3", "--s3-port", str(s3_port),
          "--recipe", recipe, "--watch-cron", ""]  # fmt: skip
    s3 = f"http://127.0.0.1:{s3_port}"
    try:
        subprocess.run(up, check=True, capture_output=True, timeout=600)
        yield StackTarget(f"http://127.0.0.1:{port}/api", state,
                          lambda prefix: [f"store.root=s3://bard/{prefix}", f"store.endpoint_url={s3}"],
                          lambda prefix: ArtifactStore(f"s3://bard/{prefix}", s3))  # fmt: skip
    finally:
        subprocess.run([*bard, "down", "--state-dir", str(state)], capture_output=True, timeout=120)


def secrets(workdir: Path, recipe: str) -> TrialResult:
    """The secrets trial (bard_pipeline/chaos/secrets.py) with its servers, on a Prefect home of its own (what it
    scans), the runs in this process against Prefect's ephemeral API."""
    from moto.server import ThreadedMotoServer

    from bard_pipeline.chaos.secrets import Targets, fake_secrets, in_process, secrets_trial
    from bard_pipeline.infra.stack import free_port
    from tests.support.openai_server import FaultPlan, FaultServer

    os.environ["PREFECT_HOME"] = str(workdir / "prefect-home")
    fakes, port = fake_secrets(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="y").create_bucket(Bucket="bard-chaos")  # fmt: skip
        with FaultServer(FaultPlan(require_key=fakes["OPENAI_API_KEY"]), free_port()) as server:
            dead = f"http://127.0.0.1:{free_port()}/v1"
            targets = Targets(f"http://127.0.0.1:{port}", "bard-chaos", server.url, dead)
            return secrets_trial(workdir, fakes, targets, in_process(recipe)).result
    finally:
        moto.stop()


def _trials(text: str) -> dict[Fault | None, int]:
    """``--trials``: ``N`` (every fault: key None) or ``FAULT=N,...``."""
    if "=" not in text:
        return {None: int(text)}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    try:
        return {Fault(name.strip()): int(count) for name, count in pairs}
    except ValueError as exc:
        faults = ", ".join(f.value for f in Fault)
        raise argparse.ArgumentTypeError(
            f"{text!r}: {exc}; expected N or FAULT=N,... with FAULT one of {faults}"
        ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "configs" / "smoke.yaml"))
    parser.add_argument("--faults", default=",".join(f.value for f in Fault), help="comma-separated")
    parser.add_argument("--trials", type=_trials, default={}, help="trials per fault: N for every fault, or "
                        "FAULT=N,... (the others keep the campaign's; default: the campaign's)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores)")
    parser.add_argument("--clean-store", default=None, help="a local store whose newest completed run is the "
                        "reference (its recipe and overrides), instead of a clean run of --recipe")  # fmt: skip
    parser.add_argument("--until", default=None, help="trials stop after this stage (e.g. materialize)")
    parser.add_argument("--bad-input-examples", type=int, default=Plan.bad_input_examples,
                        help="bad input: generated cases per generator")  # fmt: skip
    parser.add_argument("--rerun-to-end", action="store_true", help="killed driver: rerun to the last stage, not "
                        "to the end of the killed one")  # fmt: skip
    args = parser.parse_args()
    faults = [Fault(name.strip()) for name in args.faults.split(",") if name.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bard-chaos-"))
    t0 = time.monotonic()
    if args.clean_store:
        clean = CleanRun.of(Path(args.clean_store.removeprefix("file://")), until=args.until)
    else:
        print(f"chaos: clean run of {args.recipe} in {workdir}", file=sys.stderr, flush=True)
        clean = CleanRun.make(args.recipe, workdir, until=args.until)
    print(f"chaos: reference ready in {time.monotonic() - t0:.0f} s, {clean.rows.total} rows", file=sys.stderr)

    def show(result: TrialResult) -> None:
        verdict = "survived" if result.survived else "FAILED"
        rows = f"{result.rows_lost} rows lost, {result.rows_duplicated} duplicated"  # the line alone is a record
        print(f"chaos: {result.fault.label}: {verdict} in {result.recovery_s:.1f} s, {rows} ({result.detail})",
              file=sys.stderr, flush=True)  # fmt: skip

    results: list[TrialResult] = []
    for fault in faults:
        trials = args.trials.get(fault, args.trials.get(None, DEFAULT_TRIALS[fault]))
        plan = Plan(trials=trials, seed=args.seed, rerun_to_end=args.rerun_to_end,
                    bad_input_examples=args.bad_input_examples, cluster=two_nodes, s3=s3_server,
                    stack=lambda root: local_stack(root, clean.recipe), restart=start_server,
                    secrets=lambda root: secrets(root, clean.recipe))  # fmt: skip
        results += run_campaign(clean, [fault], workdir, plan, show)
    print(render(results))
    print(f"chaos: {time.monotonic() - t0:.0f} s in all", file=sys.stderr)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
