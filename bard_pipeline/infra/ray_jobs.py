"""Submitting work to a Ray cluster as a Ray Job, and waiting for it: the job submission API over HTTP.

Ray Client (``ray://``) refuses a client whose Python or Ray differs from the cluster's, and Ray's own docs
steer Ray Train users to Ray Jobs; the Jobs API is plain HTTP against the head's dashboard, so the flow
runner's image may differ from the cluster's. A job carries its own runtime env:

- the project's code, when uploaded (``py_modules``: the ``bard_core`` and ``bard_pipeline`` folders of the
  submitting checkout, caches left out), so the cluster runs what the flow runner runs;
- the job's spec, in one environment variable (``spec_env``; no working dir: Ray's working-dir packages are
  shared and garbage-collected per node, and a job's driver lost its working directory mid-run in testing);
- environment variables by name: the project's switches and non-secret store settings, plus whatever
  ``ray.job_env_vars`` names. Only names are logged; values are never logged or put in an exception.

While it waits, ``run_job`` relays the job's new log lines and stops the job (best effort) when the wait
ends any other way than with the job finishing: timeout, an exception, Prefect cancelling the flow run.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bard_pipeline.infra.env import DEFAULTS

log = logging.getLogger(__name__)

POLL_S = 1.0
TAIL_LINES = 30  # log lines quoted in the error of a failed job
FINISHED = ("SUCCEEDED", "FAILED", "STOPPED")
# Set in the submitter's environment, these travel with every job: none of them is a secret.
FORWARDED_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", "HF_ENDPOINT",
                 "HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")  # fmt: skip
FORWARDED_PREFIX = "BARD_"  # the project's own switches (cache dir, precision, verbose, test fault switches)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
CODE_EXCLUDES = ("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache")


class RayJobError(RuntimeError):
    """A Ray Job that failed, was stopped, timed out, or could not be submitted."""


@dataclass(frozen=True)
class JobRequest:
    """One job: where it goes, what runs, and what travels with it (spec file, code, environment)."""

    address: str  # the Jobs API, http://HEAD:8265
    submission_id: str
    entrypoint: str
    spec_env: str  # the variable that carries the spec to the entrypoint
    spec_json: str
    env_vars: Mapping[str, str] = field(default_factory=dict)
    code: tuple[Path, ...] = ()  # package folders shipped as py_modules; () uses the cluster's installed ones
    metadata: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 24 * 3600.0


@dataclass(frozen=True)
class JobOutcome:
    """What ran where: the job ids, the node its driver ran on, and how long it took."""

    submission_id: str
    job_id: str | None  # Ray's own id of the job's driver (actors and tasks are listed under it)
    status: str
    driver_node_id: str | None
    start_time_s: float | None
    end_time_s: float | None

    @property
    def duration_s(self) -> float | None:
        if self.start_time_s is None or self.end_time_s is None:
            return None
        return round(self.end_time_s - self.start_time_s, 3)

    def as_record(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "job_id": self.job_id,
            "status": self.status,
            "driver_node_id": self.driver_node_id,
            "duration_s": self.duration_s,
        }


def code_packages() -> tuple[Path, ...]:
    """The folders of this process's ``bard_core`` and ``bard_pipeline``: what ``py_modules`` uploads."""
    import bard_core
    import bard_pipeline

    return tuple(Path(module.__file__ or "").resolve().parent for module in (bard_core, bard_pipeline))


def job_env(extra_names: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The variables a job gets from ``environ`` (default: this process's): the process defaults of
    ``infra.env``, the project's ``BARD_*`` switches, the non-secret store settings, and ``extra_names``.
    Returns them and the names in ``extra_names`` that are not set."""
    source = os.environ if environ is None else environ
    names = [*DEFAULTS, *FORWARDED_ENV, *sorted(k for k in source if k.startswith(FORWARDED_PREFIX)), *extra_names]
    env = {name: source[name] for name in dict.fromkeys(names) if name in source}
    return env, [name for name in extra_names if name not in source]


def runtime_env(request: JobRequest) -> dict[str, Any]:
    """Ray's runtime env for ``request``: its environment (the spec included) and, if shipped, the code."""
    env: dict[str, Any] = {"env_vars": {**request.env_vars, request.spec_env: request.spec_json}}
    if request.code:
        env["py_modules"] = [str(path) for path in request.code]
        env["excludes"] = list(CODE_EXCLUDES)
    return env


def client(address: str) -> Any:
    """A ``JobSubmissionClient`` for the Jobs API at ``address``; unreachable is an error naming the fix."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, or a RuntimeError wrapping it
        raise RayJobError(
            f"cannot reach the Ray Jobs API at {address} (ray.job_address): {type(exc).__name__}: {exc}; "
            "set it to the head's dashboard address (http://HEAD:8265) and check that the dashboard is up"
        ) from None


def run_job(request: JobRequest, emit: Callable[[str], None], poll_s: float = POLL_S) -> JobOutcome:
    """Submit ``request``, relay its log lines to ``emit`` as they come, and return once it succeeded.

    A failed or stopped job raises ``RayJobError`` with the job id, Ray's status message and the last log
    lines; a job still running after ``timeout_s``, or a wait ended by any exception (a cancelled flow
    run included), is stopped first."""
    jobs = client(request.address)
    try:
        submission_id = jobs.submit_job(
            entrypoint=request.entrypoint,
            submission_id=request.submission_id,
            runtime_env=runtime_env(request),
            metadata=dict(request.metadata),
        )
    except Exception as exc:
        raise RayJobError(
            f"submitting Ray job {request.submission_id} to {request.address} failed: {type(exc).__name__}: "
            f"{_first_line(str(exc))}"
        ) from None
    log.info("Ray job %s submitted to %s", submission_id, request.address)
    tail = _LogTail(jobs, submission_id, emit)
    deadline = time.monotonic() + request.timeout_s
    finished = False
    try:
        while True:
            info = jobs.get_job_info(submission_id)
            status = str(getattr(info.status, "value", info.status))
            if status in FINISHED:
                finished = True
                break
            if time.monotonic() > deadline:
                raise RayJobError(
                    f"Ray job {submission_id} still {status} after {request.timeout_s:.0f} s (ray.job_timeout_s); "
                    "it was stopped"
                )
            tail.relay()
            time.sleep(poll_s)
    finally:
        if not finished:
            _stop(jobs, submission_id)
    tail.relay(final=True)
    outcome = JobOutcome(
        submission_id=submission_id,
        job_id=info.job_id,
        status=status,
        driver_node_id=info.driver_node_id,
        start_time_s=info.start_time / 1000 if info.start_time else None,
        end_time_s=info.end_time / 1000 if info.end_time else None,
    )
    if status != "SUCCEEDED":
        last = "\n".join(tail.lines[-TAIL_LINES:]) or "(no log lines)"
        raise RayJobError(
            f"Ray job {submission_id} {status}: {_first_line(info.message or '')}\n"
            f"last log lines (all: `ray job logs {submission_id} --address {request.address}`):\n{last}"
        )
    return outcome


class _LogTail:
    """The job's log as far as it was relayed; a line is relayed once it is complete."""

    def __init__(self, jobs: Any, submission_id: str, emit: Callable[[str], None]) -> None:
        self.jobs, self.submission_id, self.emit = jobs, submission_id, emit
        self.lines: list[str] = []

    def relay(self, final: bool = False) -> None:
        try:
            text: str = self.jobs.get_job_logs(self.submission_id)
        except Exception as exc:  # the logs are a courtesy: a hiccup must not fail the stage
            log.debug("reading the logs of Ray job %s: %s", self.submission_id, exc)
            return
        lines = text.splitlines()
        if not final and text and not text.endswith("\n"):
            lines = lines[:-1]  # still being written
        for line in lines[len(self.lines) :]:
            self.emit(_ANSI.sub("", line))  # Ray colours some of its lines; a Prefect log is plain text
        self.lines = lines if len(lines) > len(self.lines) else self.lines


def _stop(jobs: Any, submission_id: str) -> None:
    try:
        jobs.stop_job(submission_id)
        log.warning("Ray job %s stopped", submission_id)
    except Exception as exc:  # best effort: the wait is already ending with an error of its own
        log.warning("could not stop Ray job %s: %s", submission_id, exc)


def _first_line(text: str) -> str:
    # Ray appends the job's logs to its message ("..., last available logs (truncated ...):"): we quote our own.
    first = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return first.split(", last available logs", 1)[0]
