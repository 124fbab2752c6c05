"""Launching a training loop on Ray Train: workers x CPUs/GPUs from config, checkpoints in scratch storage.

The run name is derived from the artifact fingerprint, so a retried stage finds its own snapshot and
resumes from the last checkpoint; after the artifact is committed the scratch run is deleted (a later
rebuild starts clean). Scratch lives beside the artifacts: ``<root>/_scratch/ray_train`` (a local path,
or a bucket prefix on S3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bard_core.config import TrainResourcesConfig
from infra.store import ArtifactStore

log = logging.getLogger(__name__)


def _storage(store: ArtifactStore) -> tuple[str, Any]:
    if store.root.startswith("file://"):
        return str(Path(store.root[len("file://") :]) / "_scratch" / "ray_train"), None
    import pyarrow.fs as pafs

    endpoint = store.endpoint_url
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs = {"endpoint_override": host, "scheme": scheme}
    return f"{store.root[len('s3://') :]}/_scratch/ray_train", pafs.S3FileSystem(**kwargs)


def fit(
    loop: Callable[[dict[str, Any]], None],
    loop_config: dict[str, Any],
    resources: TrainResourcesConfig,
    run_name: str,
    store: ArtifactStore,
) -> tuple[Path, dict[str, Any]]:
    """Run ``loop`` on Ray Train; returns the final checkpoint's local folder and the last reported metrics."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage_path, filesystem = _storage(store)
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": 1} if resources.use_gpu else {})}
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=resources.workers, use_gpu=resources.use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=resources.max_failures),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {run_name} ended without a checkpoint")
    folder = Path(result.checkpoint.to_directory())
    if not (folder / "FINAL").exists():
        raise RuntimeError(f"training run {run_name}: the last checkpoint is not the final model ({folder})")
    return folder, dict(result.metrics or {})


def drop_scratch(store: ArtifactStore, run_name: str) -> None:
    storage_path, filesystem = _storage(store)
    target = f"{storage_path}/{run_name}"
    try:
        if filesystem is None:
            import shutil

            shutil.rmtree(target, ignore_errors=True)
        else:
            filesystem.delete_dir(target)
    except OSError as exc:  # scratch only: never fail a committed stage over it
        log.warning("could not remove training scratch %s: %s", target, exc)
