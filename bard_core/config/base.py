"""Shared config building blocks: the frozen section base, store, Ray, resources, sampling.

What a fingerprint leaves out is declared here, once: a field is execution-only when its type is an
``ExecutionSection`` (resources) or it is marked ``Field(..., json_schema_extra=EXECUTION)`` (shard sizes,
switches). ``Section.fingerprint_dump`` drops those at any depth, so no stage excludes fields by hand.
An option added later is marked ``OMIT_DEFAULT``: at its default it is left out too, so old addresses hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo

EXECUTION: dict[str, Any] = {"execution": True}
"""Marks a field execution-only: how a stage runs, not what it writes (``Field(json_schema_extra=EXECUTION)``)."""

OMIT_DEFAULT: dict[str, Any] = {"omit_default": True}
"""Marks an option added after artifacts existed: while it holds its default it is left out of the
fingerprint, so adding it moved no address (``Field(default, json_schema_extra=OMIT_DEFAULT)``); any other
value is fingerprinted like every field."""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def fingerprint_dump(self) -> dict[str, Any]:
        """The section as JSON without its execution-only fields, at any depth: what a fingerprint hashes."""
        return self.model_dump(mode="json", exclude=self.execution_exclude())

    def execution_exclude(self) -> dict[str, Any]:
        """The execution-only fields as a pydantic ``exclude`` tree (nested sections, tuples and dicts)."""
        exclude: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if _is_execution(info, value) or _is_omitted_default(info, value):
                exclude[name] = True
            elif nested := _nested_exclude(value):
                exclude[name] = nested
        return exclude


class ExecutionSection(Section):
    """A section that says how a stage runs (replicas, CPUs, GPUs, batch sizes), never what it computes:
    a field of this type is left out of every fingerprint."""


def _is_execution(info: FieldInfo, value: object) -> bool:
    extra = info.json_schema_extra
    marked = isinstance(extra, Mapping) and extra.get("execution") is True
    return marked or isinstance(value, ExecutionSection) or _typed_execution(info.annotation)


def _is_omitted_default(info: FieldInfo, value: object) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, Mapping) and extra.get("omit_default") is True and value == info.default


def _typed_execution(annotation: object) -> bool:
    # Through unions and containers, so an optional or a tuple of execution sections counts too.
    if isinstance(annotation, type) and issubclass(annotation, ExecutionSection):
        return True
    return any(_typed_execution(arg) for arg in get_args(annotation))


def _nested_exclude(value: object) -> dict[Any, Any] | None:
    # Keys are field names below a section, indices below a tuple or list, keys below a dict.
    if isinstance(value, Section):
        return value.execution_exclude() or None
    items: list[tuple[Any, object]] = []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = list(enumerate(value))
    nested = {key: sub for key, item in items if (sub := _nested_exclude(item))}
    return nested or None


# --------------------------------------------------------------------------- infrastructure


class StoreConfig(Section):
    root: str = "file://.bard/store"
    """Artifact store root: file://PATH (relative to the working directory) or s3://BUCKET/PREFIX."""
    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, a local S3 server). Credentials come from the environment
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile), never from the config."""

    @field_validator("root")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3:// (e.g. file://.bard/store, s3://my-bucket/bard)")
        return value.rstrip("/")


class RayConfig(Section):
    address: str | None = None
    """Ray cluster to join ('auto', or ray://HOST:PORT). None starts a private local runtime per run."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of the private local runtime (None: all of this machine's)."""
    temp_dir: str | None = None
    """Ray session directory for the local runtime (None: <system temp>/bard-ray). Keep the path short:
    Ray puts Unix sockets there."""
    job_address: str | None = Field(default=None, json_schema_extra={**EXECUTION, **OMIT_DEFAULT})
    """Ray Jobs API of a cluster (its dashboard, http://HEAD:8265; 'auto': $RAY_API_SERVER_ADDRESS, which the
    compose and KubeRay work pools set). When set, the stages of `ray.job_stages` each run as a Ray Job there
    (the way Ray recommends reaching a cluster from outside it: plain HTTP, no Ray Client, so the flow
    runner's Python may differ from the cluster's); the others stay in the flow."""
    job_stages: tuple[str, ...] = Field(
        default=("select", "sample", "assistant", "amplify", "compress", "sft", "rl", "evaluate"),
        json_schema_extra={**EXECUTION, **OMIT_DEFAULT},
    )
    """The stages submitted as Ray Jobs when `ray.job_address` is set (the heavy ones by default)."""
    job_env_vars: tuple[str, ...] = Field(default=(), json_schema_extra={**EXECUTION, **OMIT_DEFAULT})
    """Names of further environment variables the jobs get from the submitting process (e.g. an API key the
    cluster lacks). Their values travel in the job's runtime env, which the cluster's dashboard shows, so
    prefer credentials the cluster's nodes already hold (compose and KubeRay give them the store's)."""
    job_upload_code: bool = Field(default=True, json_schema_extra={**EXECUTION, **OMIT_DEFAULT})
    """Ship this checkout's bard_core and bard_pipeline with each job (runtime env `py_modules`), so the
    cluster runs exactly the submitter's code; False relies on the packages installed in the cluster's image."""
    job_timeout_s: float = Field(default=7 * 24 * 3600.0, gt=0, json_schema_extra={**EXECUTION, **OMIT_DEFAULT})
    """How long a stage waits for its job before stopping it and failing."""

    @field_validator("job_address")
    @classmethod
    def _jobs_api(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"{value!r} is not a Ray Jobs API address: use the head's dashboard, http://HEAD:8265, or 'auto' "
                "(ray:// is Ray Client, which this field does not use; an in-cluster driver sets ray.address)"
            )
        return value.rstrip("/") if value else value

    @field_validator("job_stages")
    @classmethod
    def _job_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(JOB_STAGES))
        if unknown:
            raise ValueError(f"stages {unknown} cannot run as Ray jobs; choose from {', '.join(JOB_STAGES)}")
        return value


JOB_STAGES = ("select", "sample", "assistant", "amplify", "compress", "sft", "rl", "evaluate")
"""The stages that can run as Ray Jobs (``RayConfig.job_stages``): those whose work runs on Ray."""


class ResourcesConfig(ExecutionSection):
    replicas: int = Field(default=1, ge=1)
    """Engine replicas (Ray actors) working in parallel."""
    cpus_per_replica: float = Field(default=0.5, gt=0)
    """Ray CPUs reserved per replica. Keep it fractional on small nodes: actors holding every CPU starve
    Ray Data's read/write tasks and the stage deadlocks."""
    gpus_per_replica: float = Field(default=0.0, ge=0)
    """GPUs per replica (tensor-parallel engines ask for their TP size)."""
    batch_size: int = Field(default=64, ge=1)
    """Requests handed to an engine replica per call."""


class SamplingConfig(Section):
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(default=4096, ge=1)
    """Cap on generated tokens per completion (the engine's tokenizer)."""
    seed: int = 0
    """Sampling seed; with the same seed a deterministic engine reproduces its outputs."""
