"""What travels with a Ray Job: the environment by name (secrets only when named) and the project's code."""

from __future__ import annotations

from bard_pipeline.infra import ray_jobs
from tests.conftest import REPO


def test_the_job_environment_forwards_switches_and_named_variables_only() -> None:
    environ = {"BARD_CACHE_DIR": "/c", "AWS_ENDPOINT_URL_S3": "http://s3", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
               "OPENAI_API_KEY": "sk-1", "HOME": "/root", "DO_NOT_TRACK": "1"}  # fmt: skip
    env, missing = ray_jobs.job_env(["OPENAI_API_KEY", "HF_TOKEN"], environ)
    assert env == {
        "BARD_CACHE_DIR": "/c",
        "AWS_ENDPOINT_URL_S3": "http://s3",
        "OPENAI_API_KEY": "sk-1",
        "DO_NOT_TRACK": "1",
    }  # fmt: skip  (no credential unless named, nothing unrelated)
    assert missing == ["HF_TOKEN"]


def test_the_runtime_env_carries_the_spec_and_ships_the_packages_without_caches() -> None:
    code = ray_jobs.code_packages()
    assert code == (REPO / "bard_core", REPO / "bard_pipeline")
    request = ray_jobs.JobRequest("http://127.0.0.1:8265", "id", "python -m x", "SPEC", '{"a":1}', {"K": "v"}, code)
    env = ray_jobs.runtime_env(request)
    assert env["env_vars"] == {"K": "v", "SPEC": '{"a":1}'}
    assert env["py_modules"] == [str(REPO / "bard_core"), str(REPO / "bard_pipeline")]
    assert "__pycache__" in env["excludes"]
    installed = ray_jobs.runtime_env(ray_jobs.JobRequest("http://h:8265", "id", "python -m x", "SPEC", "{}"))
    assert "py_modules" not in installed  # ray.job_upload_code=false: the image's packages
