"""Launching a training loop on Ray Train: workers x CPUs/GPUs from config, checkpoints in scratch storage.

The run name is derived from the artifact fingerprint, so a retried stage finds its own snapshot and
resumes from the last checkpoint; after the artifact is committed the scratch run is deleted (a later
rebuild starts clean). Scratch lives beside the artifacts: ``<root>/_scratch/ray_train`` (a local path,
or a bucket prefix on S3).

While ``trainer.fit()`` blocks, the driver shows a steps bar: rank 0 reports its step to a small named actor
(``StepBoard``, found by the run name; the reporting callback is in ``training.py``) that the driver polls.

What a worker needs travels as one typed, frozen ``TrainJob``: the stage section, the budget contract,
where the model and the store are, and the rows to train on, which the driver wrote into the artifact it is
building. Ray Train hands a loop a dict, so the job rides in it under one key (``TrainJob.loop_config`` /
``TrainJob.of``) and nothing else is read from that dict.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from bard_core.budget import BudgetSpec
from bard_core.config import RLStageConfig, SFTStageConfig
from bard_core.manifest import FileEntry
from bard_pipeline.infra.models import MODEL_PREFIX
from bard_pipeline.infra.progress import Bar
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore

log = logging.getLogger(__name__)

STEPS_NAMESPACE = "bard"
POLL_S = 1.0


def _storage(store: ArtifactStore) -> tuple[str, Any]:
    if store.root.startswith("file://"):
        return str(Path(store.root[len("file://") :]) / "_scratch" / "ray_train"), None
    import pyarrow.fs as pafs

    endpoint = store.endpoint_url
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs = {"endpoint_override": host, "scheme": scheme}
    # Arrow's own S3 client (Ray Train's checkpoints): 3 attempts by default, invisible to our retry counts; as
    # many as the store's botocore clients get, so a flaky S3 fails a checkpoint no more often than a shard.
    retry = pafs.AwsStandardS3RetryStrategy(max_attempts=10)
    return f"{store.root[len('s3://') :]}/_scratch/ray_train", pafs.S3FileSystem(retry_strategy=retry, **kwargs)


Section = TypeVar("Section", SFTStageConfig, RLStageConfig)
JOB_KEY = "job"  # the one key of the dict Ray Train passes a loop


@dataclass(frozen=True)
class TrainRows:
    """A table the driver wrote into the artifact it is building. That artifact has no manifest until
    training ends, so a worker reads the file by its entry (content-addressed path, checksum verified)."""

    artifact: ArtifactRef
    entry: FileEntry

    def read(self, store: ArtifactStore) -> list[dict[str, Any]]:
        return list(store.read_parquet(self.artifact, self.entry).to_pylist())


@dataclass(frozen=True)
class TrainJob(Generic[Section]):
    """Everything a training worker reads: small and picklable, like ``bard_pipeline.infra.jobs.EngineWorker``."""

    section: Section
    budget: BudgetSpec  # the contract the RL reward scores against (SFT sees it only in its prompts)
    model_location: str  # where training starts: "store:<stage>/<fp>", a folder, or a hub id
    store_root: str
    endpoint_url: str | None
    train: TrainRows
    validation: TrainRows | None = None
    model_prefix: str = MODEL_PREFIX  # the model folder inside a store artifact
    instruction: TrainRows | None = None  # SFT with `sft.curriculum`: the instruction-alignment records

    @property
    def use_gpu(self) -> bool:
        return self.section.resources.use_gpu

    @property
    def threads(self) -> int:
        """Torch CPU threads per worker: the CPUs Ray reserved for it."""
        return max(1, int(self.section.resources.cpus_per_worker))

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.store_root, self.endpoint_url)

    def loop_config(self) -> dict[str, Any]:
        """Ray Train's ``train_loop_config``, which must be a dict: the job under its one key."""
        return {JOB_KEY: self}

    @staticmethod
    def of(config: Mapping[str, Any], kind: type[Section]) -> TrainJob[Section]:
        """The job inside a loop's config, checked to be for a ``kind`` section (an SFT loop never gets RL)."""
        job = config.get(JOB_KEY)
        if not isinstance(job, TrainJob) or not isinstance(job.section, kind):
            raise TypeError(f"a {kind.__name__} training loop got {type(job).__name__}, not a TrainJob for it")
        return job


def fit(
    loop: Callable[[dict[str, Any]], None], job: TrainJob[Any], run_name: str, store: ArtifactStore
) -> tuple[Path, dict[str, Any]]:
    """Run ``loop`` on Ray Train with ``job`` (workers x CPUs/GPUs from its section's resources); returns
    the final checkpoint's local folder and the last reported metrics."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = job.section.resources
    storage_path, filesystem = _storage(store)
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": 1} if resources.use_gpu else {})}
    trainer = TorchTrainer(
        loop,
        train_loop_config=job.loop_config(),
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
    with _steps_bar(run_name):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {run_name} ended without a checkpoint")
    folder = Path(result.checkpoint.to_directory())
    if not (folder / "FINAL").exists():
        raise RuntimeError(f"training run {run_name}: the last checkpoint is not the final model ({folder})")
    return folder, dict(result.metrics or {})


def steps_actor_name(run_name: str) -> str:
    return f"bard-steps-{run_name}"


class StepBoard:
    """The training step of a run, as rank 0 last reported it (a Ray actor; ``ray.remote`` is applied lazily)."""

    def __init__(self) -> None:
        self.step, self.total = 0, 0

    def set(self, step: int, total: int) -> None:
        self.step, self.total = step, total

    def get(self) -> tuple[int, int]:
        return self.step, self.total


def step_board() -> Any:
    """In a Ray Train worker: the handle of this run's board, or None when the driver started none."""
    import ray
    import ray.train

    try:
        return ray.get_actor(steps_actor_name(ray.train.get_context().get_experiment_name()), STEPS_NAMESPACE)
    except ValueError:
        return None


class StepsToDriver:
    """TrainerCallback body (mixed with transformers' TrainerCallback in the worker): rank 0 sends its step.
    Fire and forget: the board is a progress display, training never waits for it."""

    def __init__(self, board: Any) -> None:
        self.board = board

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._send(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._send(state)

    def _send(self, state: Any) -> None:
        if state.is_world_process_zero:
            self.board.set.remote(int(state.global_step), int(state.max_steps or 0))


@contextmanager
def _steps_bar(run_name: str) -> Iterator[None]:
    """A steps bar for the block (``trainer.fit()``), fed by polling the run's ``StepBoard``."""
    import ray

    try:
        actor = ray.remote(num_cpus=0)(StepBoard)
        board = actor.options(name=steps_actor_name(run_name), namespace=STEPS_NAMESPACE).remote()
    except ValueError as exc:  # the same run is training elsewhere on this cluster: train without a bar
        log.debug("no steps bar for %s: %s", run_name, exc)
        yield
        return
    stop = threading.Event()
    with Bar(run_name.rsplit("-", 1)[0], None, "steps") as bar:  # run names are <stage>-<fingerprint>
        # In a copy of this context, so the bar's lines log into the Prefect task run, as the caller's would.
        poll = contextvars.copy_context().run
        poller = threading.Thread(target=poll, args=(_poll, board, bar, stop), name="bard-steps", daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            _show(board, bar)
            ray.kill(board)


def _poll(board: Any, bar: Bar, stop: threading.Event) -> None:
    while not stop.wait(POLL_S):
        _show(board, bar)


def _show(board: Any, bar: Bar) -> None:
    import ray

    try:
        step, total = ray.get(board.get.remote(), timeout=10)
    except (ray.exceptions.RayError, TimeoutError) as exc:  # a display only: never fail training over it
        log.debug("steps board unavailable: %s", exc)
        return
    if total:
        bar.update(step, total)


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
