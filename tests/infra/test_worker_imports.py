"""What Ray workers import must not need Prefect.

GPU worker nodes run the GPU image, which cannot carry Prefect (every vLLM in TRL's supported range caps
fastapi below Prefect 3.9's floor; constraints-gpu.txt). Only a stage's Ray Job driver, on the head, imports the
Prefect task code. Ray ships a worker's functions and classes by module reference, so every module they live in
must import without Prefect: this test imports them with Prefect made unimportable.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

# Where the code that runs inside Ray workers lives: engine actors and the actor pool (sample, compress,
# evaluate), the batch jobs they run, the Ray Train loops (sft, rl) and the store they read and write.
WORKER_MODULES = (
    "bard_pipeline.infra.actor_pool",
    "bard_pipeline.infra.engines",
    "bard_pipeline.infra.engines.hf",
    "bard_pipeline.infra.engines.openai",
    "bard_pipeline.infra.engines.vllm",
    "bard_pipeline.infra.jobs",
    "bard_pipeline.infra.training",
    "bard_pipeline.infra.ray_train",
    "bard_pipeline.infra.store",
    "bard_pipeline.infra.writer",
    "bard_pipeline.infra.local_cache",
)

_BLOCK_PREFECT = """
import importlib.abc, sys
class NoPrefect(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith("prefect."):
            raise ImportError(f"{name} is not installed on a GPU worker")
sys.meta_path.insert(0, NoPrefect())
import importlib
for module in sys.argv[1:]:
    importlib.import_module(module)
assert not [m for m in sys.modules if m == "prefect" or m.startswith("prefect.")]
"""


def test_worker_side_modules_import_without_prefect() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_PREFECT, *WORKER_MODULES], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_check_catches_a_module_that_needs_prefect() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_PREFECT, "bard_pipeline.tasks.stage"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "not installed on a GPU worker" in done.stderr
