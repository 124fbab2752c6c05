"""The Ray Jobs settings of RayConfig: validated with a fix in the message, and never in a fingerprint."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bard_core.config import RayConfig


def test_the_job_settings_are_execution_only() -> None:
    jobs = RayConfig(job_address="http://head:8265/", job_stages=("sft",), job_env_vars=("OPENAI_API_KEY",),
                     job_upload_code=False, job_timeout_s=60)  # fmt: skip
    assert jobs.job_address == "http://head:8265"
    assert jobs.fingerprint_dump() == RayConfig().fingerprint_dump() == {"address": None, "num_cpus": None,
                                                                         "temp_dir": None}  # fmt: skip


def test_a_ray_client_address_or_an_unknown_stage_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ValidationError, match=r"use the head's dashboard, http://HEAD:8265, or 'auto' \(ray:// is Ray Client"
    ):
        RayConfig(job_address="ray://head:10001")
    with pytest.raises(ValidationError, match=r"stages \['ingest'\] cannot run as Ray jobs; choose from select"):
        RayConfig(job_stages=("ingest", "sft"))
