"""S3 requests that fail for a moment (throttling, a 5xx, a connection cut mid-answer, a stall): retried, and
every retry logged at WARNING and counted (``streams.note_retry``), never silent.

Who retries what:

* botocore retries each request (``standard`` mode, ``S3_MAX_ATTEMPTS`` attempts, backoff capped at 20 s):
  500/502/503/504, throttling codes (``SlowDown``), connection errors and timeouts, an answer cut before botocore
  read it whole (everything but a GET's streamed body). Two hooks on the client see it: ``needs-retry`` notes why
  an attempt failed, ``request-created`` sees each attempt's number (``context["retries"]["attempt"]``) and
  counts a request, or logs and counts a retry.
* s3fs's own retry loop (``S3FileSystem.retries``) is off (one try) on the store's file system: it retries
  quietly (debug logs only) and would hide retries from the counts.
* the store retries what botocore cannot: a GET whose streamed body is cut (``RetryingReader``, ``retrying``:
  the same range read again), and a multipart completion whose answer was lost (``streams._completed_anyway``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import botocore.exceptions as boto
from aiobotocore.httpsession import AIOHTTPSession
from fsspec.asyn import sync_wrapper
from s3fs import S3FileSystem

from bard_pipeline.infra.streams import ReadStream, StoreIOError, count_io, note_retry

S3_MAX_ATTEMPTS = 10
"""Attempts per S3 request (botocore's default is 3), so that a burst of throttling or of 5xx answers does not
fail a run; backoff is random, capped at 20 s. ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS``, when set, win."""
READ_ATTEMPTS = 8
"""Attempts at a read whose streamed answer is cut (the store's own loop)."""
TRANSIENT_READ_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,  # ClientPayloadError: the body ended before its Content-Length
    boto.HTTPClientError,  # ResponseStreamingError, ReadTimeoutError, ConnectionClosedError
    boto.ConnectionError,
    boto.IncompleteReadError,
    TimeoutError,  # asyncio's and fsspec's timeouts too
)
_CAUSE = "bard_retry_cause"
T = TypeVar("T")


class NoQuietResendHTTPSession(AIOHTTPSession):  # type: ignore[misc]
    """aiohttp's sessions without their one quiet resend of a GET, HEAD, PUT or DELETE whose reused connection
    dropped before the answer's headers (meant for idle connections the server closed): the error goes to
    botocore, which retries it, counted. (``_retry_connection`` is aiohttp's private switch: an aiohttp without
    it keeps resending quietly, nothing fails.)"""

    async def _get_session(self, proxy_url: str | None) -> Any:
        session = await super()._get_session(proxy_url)
        session._retry_connection = False
        return session


class StoreS3FileSystem(S3FileSystem):  # type: ignore[misc]  # s3fs has no type hints
    """s3fs with its own (silent) retry loop off and the counting hooks on each client it creates."""

    retries = 1

    def __init__(self, *args: Any, config_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = {"http_session_cls": NoQuietResendHTTPSession, **(config_kwargs or {})}
        super().__init__(*args, config_kwargs=config, **kwargs)

    async def set_session(self, refresh: bool = False, kwargs: dict[str, Any] | None = None) -> Any:
        client = await super().set_session(refresh=refresh, kwargs=kwargs or {})
        if getattr(self, "_hooked", None) is not client:  # once per client (s3fs calls this before each request)
            client.meta.events.register("needs-retry.s3", _note_cause, unique_id="bard-store-retry-cause")
            client.meta.events.register("request-created.s3", _on_attempt, unique_id="bard-store-attempts")
            self._hooked = client
        return client

    _connect = set_session
    connect = sync_wrapper(set_session)


def _note_cause(request_dict: dict[str, Any] | None = None, response: Any = None, caught_exception: Any = None,
                **_: Any) -> None:  # fmt: skip
    """Why the attempt ended (kept for the next attempt's log line, if botocore makes one)."""
    if request_dict is None:
        return
    if caught_exception is not None:
        cause = describe(caught_exception)
    elif response is not None:
        http, parsed = response
        cause = f"HTTP {http.status_code} {parsed.get('Error', {}).get('Code', '')}".strip()
    else:
        return
    request_dict["context"][_CAUSE] = cause


def _on_attempt(request: Any = None, operation_name: str = "request", **_: Any) -> None:
    context = getattr(request, "context", None) or {}
    attempt = int(context.get("retries", {}).get("attempt", 1))
    if attempt <= 1:
        count_io(requests=1)
        return
    parts = urlsplit(request.url)  # the query (upload id, part number) and the headers are left out
    note_retry(operation_name, unquote(parts.path).lstrip("/"), context.get(_CAUSE, "no answer"), attempt)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def retrying(call: Callable[[], T], operation: str, key: str, attempts: int = READ_ATTEMPTS) -> T:
    """``call()``, again (after a short random backoff) when its answer was cut; ``StoreIOError`` naming
    ``key`` when every attempt was."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TRANSIENT_READ_ERRORS as exc:
            if attempt == attempts:
                raise StoreIOError(
                    f"{operation} s3://{key} failed {attempts} times, last with {describe(exc)}; the store is "
                    "unreachable or failing: check it (and store.endpoint_url), then rerun"
                ) from exc
            note_retry(operation, key, describe(exc), attempt + 1)
            time.sleep(random.uniform(0, min(0.1 * 2**attempt, 5.0)))
    raise AssertionError("unreachable")


class RetryingReader:
    """An S3 file opened for chunked reads, each read retried when its ranged GET is cut: s3fs moves the file's
    position only once a read returned, so the retry asks for the same range."""

    def __init__(self, handle: ReadStream, key: str) -> None:
        self.handle, self.key = handle, key

    def read(self, size: int = -1, /) -> bytes:
        return retrying(lambda: self.handle.read(size), "GetObject", self.key)

    def readinto(self, buffer: memoryview, /) -> int | None:
        return retrying(lambda: self.handle.readinto(buffer), "GetObject", self.key)

    def __enter__(self) -> RetryingReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self.handle.__exit__(kind, exc, tb)
