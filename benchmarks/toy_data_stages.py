"""Wall time of the toy data stages from nothing, then of an identical rerun (every stage skipped).

Runs `bard run RECIPE --until materialize` twice as a user would (fresh store, fresh Prefect home,
ephemeral API) and prints the measured figures. Targets (issue #2): first run <= 300 s on 2 cores,
rerun <= 30 s. The last line is machine-readable: `data_first_s=... data_rerun_s=... data_rerun_ratio=...`.
Smallest size (CI): configs/smoke.yaml --problems 40.

    .venv/bin/python benchmarks/toy_data_stages.py [configs/toy.yaml] [--problems N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(recipe: str, overrides: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    command = [str(REPO / ".venv/bin/bard"), "run", recipe, *overrides, "--until", "materialize"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:  # show why, not just that it failed
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"`bard run` failed with exit code {result.returncode}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="configs/toy.yaml")
    parser.add_argument("--problems", type=int, default=None, help="training problems (default: the recipe's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect"}
        overrides = [f"store.root=file://{tmp}/store"]
        overrides += [f"ingest.sources.0.size={args.problems}"] if args.problems else []
        first = run(args.recipe, overrides, env)
        second = run(args.recipe, overrides, env)
        runs = sorted(Path(tmp, "store", "runs").glob("*.json"), key=lambda p: json.loads(p.read_text())["started_at"])
        last = json.loads(runs[-1].read_text())
        dataset = json.loads(next(Path(tmp, "store", "materialize").glob("*/manifest.json")).read_text())
    statuses = {stage: info["status"] for stage, info in last["stages"].items()}
    per_tier = {tier: row["valid"] for tier, row in dataset["stats"]["tiers"].items()}
    print(f"recipe: {args.recipe}  cpus: {os.cpu_count()}")
    print(f"first run (from nothing):   {first:7.1f} s   (target <= 300 s)")
    print(f"second run (all skipped):   {second:7.1f} s   (target <= 30 s)   ratio {second / first:.2f}")
    print(f"second run stage statuses:  {statuses}")
    print(f"dataset: {dataset['stats']['problems']} problems; valid compressions per tier: {per_tier}")
    print(f"data_first_s={first:.1f} data_rerun_s={second:.1f} data_rerun_ratio={second / first:.3f}")


if __name__ == "__main__":
    main()
