"""Wall time of the toy data stages from nothing, then of an identical rerun (every stage skipped).

Runs `bard run RECIPE` twice as a user would (fresh store, fresh Prefect home, ephemeral API) and prints
the measured figures. Targets (issue #2): first run <= 300 s on 2 cores, rerun <= 30 s.

    .venv/bin/python benchmarks/toy_data_stages.py [configs/toy.yaml]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(recipe: str, store: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(REPO / ".venv/bin/bard"), "run", recipe, f"store.root={store}"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> None:
    recipe = sys.argv[1] if len(sys.argv) > 1 else "configs/toy.yaml"
    with tempfile.TemporaryDirectory(prefix="bard-bench-") as tmp:
        env = {**os.environ, "PREFECT_HOME": f"{tmp}/prefect"}
        store = f"file://{tmp}/store"
        first = run(recipe, store, env)
        second = run(recipe, store, env)
        runs = sorted(Path(tmp, "store", "runs").glob("*.json"), key=lambda p: json.loads(p.read_text())["started_at"])
        last = json.loads(runs[-1].read_text())
        dataset = json.loads(next(Path(tmp, "store", "materialize").glob("*/manifest.json")).read_text())
    statuses = {stage: info["status"] for stage, info in last["stages"].items()}
    per_tier = {tier: row["valid"] for tier, row in dataset["stats"]["tiers"].items()}
    print(f"recipe: {recipe}  cpus: {os.cpu_count()}")
    print(f"first run (from nothing):   {first:7.1f} s   (target <= 300 s)")
    print(f"second run (all skipped):   {second:7.1f} s   (target <= 30 s)   ratio {second / first:.2f}")
    print(f"second run stage statuses:  {statuses}")
    print(f"dataset: {dataset['stats']['problems']} problems; valid compressions per tier: {per_tier}")


if __name__ == "__main__":
    main()
