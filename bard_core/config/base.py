"""Shared config building blocks: the frozen section base, store, Ray, resources, sampling."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


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


class ResourcesConfig(Section):
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
