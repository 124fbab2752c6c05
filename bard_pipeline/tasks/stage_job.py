"""A stage as a Ray Job: the typed spec the flow submits, and the entrypoint the cluster runs.

With ``ray.job_address`` set, ``stage.execute`` hands each stage of ``ray.job_stages`` that is not yet
committed to ``run_as_job``: it serializes a ``StageJobSpec`` (the run's config, the stage, its input
artifacts and models, the artifact it must commit) into the job's ``$BARD_STAGE_JOB`` and submits

    python -m bard_pipeline.tasks.stage_job

(an environment variable, not a file in the job's working dir: Ray may clean a working-dir package up while
a long job still runs).

The job joins the cluster (``ray.address=auto``), calls the stage's own task body with the same arguments,
so the same code writes and commits the artifact to the store, and exits. The flow's task then reads the
committed manifest from the store. Prefect's retries and reruns work as before: a committed stage is skipped
before any job is submitted, and a retried one resumes the shards its failed job left behind.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bard_core.config import RunConfig
from bard_core.config.base import JOB_STAGES
from bard_core.manifest import Manifest
from bard_pipeline.infra import ray_jobs
from bard_pipeline.infra.ray_runtime import RaySession
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore
from bard_pipeline.tasks.models import ModelLocation
from bard_pipeline.tasks.stage import RunRecord, StageContext, logger

SPEC_ENV = "BARD_STAGE_JOB"
ENTRYPOINT = "python -m bard_pipeline.tasks.stage_job"
JOB_ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"  # what `ray.job_address=auto` reads (as Ray's `ray job` CLI does)
# The task of each stage that can run as a job: its body is what the job runs.
TASKS: dict[str, tuple[str, str]] = {
    "select": ("bard_pipeline.tasks.select", "select_problems"),
    "sample": ("bard_pipeline.tasks.sample", "sample"),
    "assistant": ("bard_pipeline.tasks.assistant", "assistant"),
    "amplify": ("bard_pipeline.tasks.amplify", "amplify"),
    "compress": ("bard_pipeline.tasks.compress", "compress"),
    "sft": ("bard_pipeline.tasks.training", "sft"),
    "rl": ("bard_pipeline.tasks.training", "rl"),
    "evaluate": ("bard_pipeline.tasks.evaluate", "evaluate"),
}
assert set(TASKS) == set(JOB_STAGES)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobModel(_Frozen):
    """A ``ModelLocation`` across the process boundary."""

    location: str
    """"store:model/<fp>", a folder, or a hub id."""
    revision: str | None = None
    """Hub revision, if any."""
    identity: str
    """What the fingerprints of the stages using it include."""


class StageArguments(_Frozen):
    """The stage task's arguments besides its context, by parameter name and kind."""

    artifacts: dict[str, str] = {}
    """Input artifacts, as keys (``sample/3f2a...``)."""
    models: dict[str, JobModel] = {}
    """One model location (sft's student, rl's start)."""
    model_maps: dict[str, dict[str, JobModel]] = {}
    """Model locations by name or label (sample's engine models, evaluate's checkpoints)."""


class StageJobSpec(_Frozen):
    """Everything the job reads: the whole run config, which stage, with what, and what it must commit."""

    config: RunConfig
    """The run's config as the job runs it (store root absolute, ``ray.address=auto``, no job address)."""
    stage: str
    """The stage to run (one of ``JOB_STAGES``)."""
    arguments: StageArguments
    """The stage task's arguments."""
    artifact: str
    """The artifact the flow expects the job to commit (``STAGE/FINGERPRINT``)."""
    run_id: str
    """The flow run this job belongs to."""

    @field_validator("stage")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"stage {value!r} cannot run as a Ray job; one of {', '.join(TASKS)}")
        return value


def stage_arguments(parameters: Mapping[str, Any]) -> StageArguments:
    """A stage task's call parameters (Prefect's ``TaskRunContext.parameters``) as typed arguments."""
    artifacts: dict[str, str] = {}
    models: dict[str, JobModel] = {}
    maps: dict[str, dict[str, JobModel]] = {}
    for name, value in parameters.items():
        if isinstance(value, StageContext) or value is None:  # None: an optional input left out (its default)
            continue
        if isinstance(value, ArtifactRef):
            artifacts[name] = value.key
        elif isinstance(value, ModelLocation):
            models[name] = _job_model(value)
        elif isinstance(value, Mapping) and all(isinstance(v, ModelLocation) for v in value.values()):
            maps[name] = {str(k): _job_model(v) for k, v in value.items()}
        else:
            raise TypeError(
                f"stage task parameter {name!r} is a {type(value).__name__}; a stage run as a Ray job takes "
                "artifact refs and model locations only (extend StageArguments in bard_pipeline/tasks/stage_job.py)"
            )
    return StageArguments(artifacts=artifacts, models=models, model_maps=maps)


def call_arguments(arguments: StageArguments) -> dict[str, Any]:
    """``stage_arguments`` back as the task's keyword arguments."""
    calls: dict[str, Any] = {name: ArtifactRef.parse(key) for name, key in arguments.artifacts.items()}
    calls.update({name: _location(model) for name, model in arguments.models.items()})
    calls.update({name: {k: _location(m) for k, m in group.items()} for name, group in arguments.model_maps.items()})
    return calls


def _job_model(location: ModelLocation) -> JobModel:
    return JobModel(location=location.location, revision=location.revision, identity=location.identity)


def _location(model: JobModel) -> ModelLocation:
    return ModelLocation(model.location, model.revision, model.identity)


def job_config(cfg: RunConfig, store_root: str) -> RunConfig:
    """The config the job runs: the store root as the flow resolved it (a relative folder would resolve
    against the job's working dir), joining the cluster it runs in, and submitting no further jobs."""
    ray = cfg.ray.model_copy(update={"address": "auto", "job_address": None})
    return cfg.model_copy(update={"store": cfg.store.model_copy(update={"root": store_root}), "ray": ray})


# ------------------------------------------------------------------------------------------ flow side


def run_as_job(ctx: StageContext, stage: str, ref: ArtifactRef) -> tuple[Manifest, dict[str, Any]]:
    """Run the current stage task as a Ray Job and wait; returns the manifest it committed and the job's
    record (ids, driver node, duration) for the run manifest."""
    from prefect.context import TaskRunContext

    log = logger()
    task_run = TaskRunContext.get()
    if task_run is None:
        raise RuntimeError(
            f"stage {stage!r} is set to run as a Ray job (ray.job_address, ray.job_stages) but was called outside "
            "its Prefect task, whose arguments the job needs; run it in the flow, or leave it out of ray.job_stages"
        )
    cfg = ctx.cfg.ray
    address = job_address(cfg.job_address)
    spec = StageJobSpec(
        config=job_config(ctx.cfg, ctx.store.root),
        stage=stage,
        arguments=stage_arguments(task_run.parameters),
        artifact=ref.key,
        run_id=ctx.run.run_id,
    )
    env, missing = ray_jobs.job_env(cfg.job_env_vars)
    if missing:
        log.warning("%s: ray.job_env_vars names unset variable(s) %s: the job runs without them", stage, missing)
    if ctx.store.root.startswith("file://") and not _loopback(address):
        log.warning(
            "%s: store.root is a local folder (%s): every Ray node must see it at that path", stage, ctx.store.root
        )
    request = ray_jobs.JobRequest(
        address=address,
        submission_id=f"bard-{stage}-{ref.fingerprint[:12]}-{uuid.uuid4().hex[:6]}",
        entrypoint=ENTRYPOINT,
        spec_env=SPEC_ENV,
        spec_json=spec.model_dump_json(),
        # No Prefect API in the cluster: the job logs to its stdout, which this task relays.
        env_vars={**env, "PREFECT_LOGGING_TO_API_ENABLED": "false"},
        code=ray_jobs.code_packages() if cfg.job_upload_code else (),
        metadata={"bard_run_id": ctx.run.run_id, "bard_stage": stage, "bard_artifact": ref.key},
        timeout_s=cfg.job_timeout_s,
    )
    code = "this checkout's bard_core and bard_pipeline" if request.code else "the cluster's installed packages"
    log.info(
        "%s: submitting Ray job %s to %s (code: %s; environment: %s)",
        stage, request.submission_id, address, code, ", ".join(sorted(env)) or "none",
    )  # fmt: skip
    outcome = ray_jobs.run_job(request, lambda line: log.info("[%s] %s", stage, line))
    log.info("%s: Ray job %s %s in %s s", stage, outcome.submission_id, outcome.status, outcome.duration_s)
    if not ctx.store.exists(ref):
        raise ray_jobs.RayJobError(
            f"Ray job {outcome.submission_id} succeeded but {ref.key} is not committed in {ctx.store.root}: the job "
            "wrote elsewhere; give the cluster and the flow the same store (an s3:// root, or a folder both see)"
        )
    manifest = ctx.store.manifest(ref)
    # Prefect artifacts (probe tables, evaluation metrics) need a flow run, which the job has not: a stage
    # module that publishes some rebuilds them here from what the job committed.
    publish = getattr(importlib.import_module(TASKS[stage][0]), "publish_job_result", None)
    if publish is not None:
        publish(ctx, ref, manifest)
    return manifest, outcome.as_record()


def job_address(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``ray.job_address``, with 'auto' read from ``$RAY_API_SERVER_ADDRESS`` (Ray's own variable for it)."""
    source = os.environ if environ is None else environ
    if configured != "auto":
        assert configured is not None
        return configured
    if not source.get(JOB_ADDRESS_ENV):
        raise ray_jobs.RayJobError(
            f"ray.job_address is 'auto' but ${JOB_ADDRESS_ENV} is not set; set it to the head's dashboard "
            "(http://HEAD:8265), or give ray.job_address that address"
        )
    return source[JOB_ADDRESS_ENV].rstrip("/")


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")


# ------------------------------------------------------------------------------------------ job side


def run_stage(spec: StageJobSpec) -> ArtifactRef:
    """Run ``spec``'s stage here, inside the cluster: the task body the flow would have run."""
    store = ArtifactStore(spec.config.store.root, spec.config.store.endpoint_url)
    run = RunRecord(spec.run_id, spec.config.name, None, [], spec.config.model_dump(mode="json"))
    ctx = StageContext(
        cfg=spec.config, store=store, ray=RaySession(spec.config.ray), run=run,
        selected=frozenset({spec.stage}), records_run=False,
    )  # fmt: skip
    ctx.ray.ensure()
    _announce(spec)
    module, name = TASKS[spec.stage]
    task = getattr(importlib.import_module(module), name)
    try:
        ref: ArtifactRef = task.fn(ctx, **call_arguments(spec.arguments))
    finally:
        ctx.ray.shutdown()
    if ref.key != spec.artifact:
        raise RuntimeError(
            f"the job built {ref.key}, the flow expected {spec.artifact}: the cluster runs other code or prompts "
            "than the flow (with ray.job_upload_code=false, its image must have the flow's version)"
        )
    return ref


def _announce(spec: StageJobSpec) -> None:
    """Where the job's driver runs and which code it runs: the first lines the flow's log shows."""
    import ray

    import bard_pipeline

    context = ray.get_runtime_context()
    log = logging.getLogger("tasks")
    log.info(
        "stage job %s (run %s) on node %s (%s), Ray job %s, Python %s, code from %s",
        spec.stage, spec.run_id, context.get_node_id(), ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        context.get_job_id(),
        platform.python_version(), Path(bard_pipeline.__file__ or "").parent,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bard_pipeline.tasks.stage_job",
        description="Run one stage of a flow run inside a Ray cluster (the entrypoint of a stage's Ray job).",
    )
    parser.add_argument(
        "--spec", type=Path, help=f"a StageJobSpec JSON file (default: the ${SPEC_ENV} the flow submits the job with)"
    )
    return parser


def read_spec(parser: argparse.ArgumentParser, path: Path | None, environ: Mapping[str, str]) -> StageJobSpec:
    """The spec from ``path``, else from ``environ[SPEC_ENV]``; a missing or invalid one exits naming it."""
    if path is None and SPEC_ENV not in environ:
        parser.error(
            f"no stage job spec: ${SPEC_ENV} is not set (the flow sets it when it submits the job); or pass --spec FILE"
        )
    source = str(path) if path else f"${SPEC_ENV}"
    try:
        text = path.read_text(encoding="utf-8") if path else environ[SPEC_ENV]
        return StageJobSpec.model_validate_json(text)
    except FileNotFoundError:
        parser.error(f"no spec file {path}")
    except ValidationError as exc:
        parser.error(f"{source} is not a stage job spec ({exc.error_count()} errors):\n{exc}")


def main(argv: list[str] | None = None) -> int:
    from bard_pipeline.infra.env import apply_defaults

    parser = build_parser()
    spec = read_spec(parser, parser.parse_args(argv).spec, os.environ)
    apply_defaults()
    # The job's stdout is its log, which the flow relays: our loggers at INFO, the libraries' at WARNING.
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("tasks", "bard_core", "bard_pipeline"):
        logging.getLogger(name).setLevel(logging.INFO)
    ref = run_stage(spec)
    print(f"stage job {spec.stage}: {ref.key} committed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
