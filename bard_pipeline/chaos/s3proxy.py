"""Flaky object storage (chaos fault 3): an HTTP proxy on loopback in front of an S3 endpoint that answers a share
of the requests with S3's own failures, and forwards the rest byte for byte.

Faults, drawn per request from a seeded ``FaultPlan``:

* ``slowdown_503``: S3's throttling answer (``503``, ``<Code>SlowDown</Code>``); the request never reaches S3.
* ``internal_500``: ``500 InternalError``; the request never reaches S3.
* ``reset_mid_body``: the request *is* forwarded and executed; the client gets the status line, the headers and
  half of the body (half of the headers when there is no body), then a TCP reset. An upload whose answer is lost
  this way was done: its retry must cope (a multipart completion retried finds its upload gone).
* ``stall``: ``stall_s`` seconds of silence, then the request is forwarded normally.

The request is relayed as the client sent it (Host, signed headers and body untouched, chunked or not), each on
a fresh upstream connection; the client's connection is kept alive as HTTP/1.1 allows.

    with FaultyS3Proxy("http://127.0.0.1:5000", FaultPlan(rate=0.15, seed=1)) as proxy:
        store = ArtifactStore("s3://bucket/x", endpoint_url=proxy.url)
        ...
        proxy.counts()  # {"requests": 812, "slowdown_503": 31, "internal_500": 29, ...}
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

FAULT_KINDS = ("slowdown_503", "internal_500", "reset_mid_body", "stall")
_ERRORS = {
    "slowdown_503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal_500": (500, "Internal Error", "InternalError", "We encountered an internal error. Please try again."),
}
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FaultPlan:
    """Which share of requests fail (``rate``, 0..1) and how: the kinds' relative weights, the stall's length."""

    rate: float = 0.15
    slowdown_503: float = 1.0
    internal_500: float = 1.0
    reset_mid_body: float = 1.0
    stall: float = 1.0
    stall_s: float = 2.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultPlan rate={self.rate} is not a share of requests: give 0..1")
        if min(self.weights) < 0 or (self.rate > 0 and sum(self.weights) <= 0):
            raise ValueError(f"FaultPlan weights {self.weights} (of {FAULT_KINDS}) need one above 0, none below")
        if self.stall_s < 0:
            raise ValueError(f"FaultPlan stall_s={self.stall_s} is negative")

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, kind)) for kind in FAULT_KINDS)


class FaultyS3Proxy:
    """The proxy, served from a thread of its own while the ``with`` block runs; ``url`` is its endpoint."""

    def __init__(self, upstream_url: str, plan: FaultPlan, port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream {upstream_url!r} is not an http://HOST:PORT endpoint")
        self.upstream = (parts.hostname, parts.port or 80)
        self.plan, self.port = plan, port
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._requests, self._faults = 0, Counter[str]()
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return self.counts()["requests"]

    @property
    def faults(self) -> dict[str, int]:
        """Faults injected so far, by kind (every kind listed, 0 if none)."""
        with self._lock:
            return {kind: self._faults[kind] for kind in FAULT_KINDS}

    def counts(self) -> dict[str, int]:
        """Requests seen and faults injected by kind, read at one instant."""
        with self._lock:
            return {"requests": self._requests, **{kind: self._faults[kind] for kind in FAULT_KINDS}}

    def __enter__(self) -> FaultyS3Proxy:
        self._thread = threading.Thread(target=self._serve, name="faulty-s3-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S) or self._failed is not None:
            raise RuntimeError(f"the fault-injecting S3 proxy did not start: {self._failed}")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)

    # ------------------------------------------------------------------ serving

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by __enter__ when it happens before the server is up
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    def _draw(self) -> str | None:
        with self._lock:
            self._requests += 1
            if self.plan.rate <= 0 or self._rng.random() >= self.plan.rate:
                return None
            kind = self._rng.choices(FAULT_KINDS, weights=self.plan.weights)[0]
            self._faults[kind] += 1
            return kind

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                method, headers = head.split(b" ", 1)[0].upper(), _headers(head)
                if headers.get(b"expect", b"").lower() == b"100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the upstream's own 100 is dropped
                body = await _read_body(reader, headers, response=False)
                keep = headers.get(b"connection", b"").lower() != b"close"
                kind = self._draw()
                if kind in _ERRORS:
                    writer.write(_error(kind, with_body=method != b"HEAD"))
                else:
                    if kind == "stall":
                        await asyncio.sleep(self.plan.stall_s)
                    answer, body_at, upstream_keep = await self._forward(head + body, method)
                    if kind == "reset_mid_body":
                        cut = body_at + (len(answer) - body_at) // 2 if len(answer) > body_at else body_at // 2
                        writer.write(answer[:cut])
                        await writer.drain()
                        _reset(writer)
                        return
                    writer.write(answer)
                    keep = keep and upstream_keep
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            writer.close()

    async def _forward(self, request: bytes, method: bytes) -> tuple[bytes, int, bool]:
        """Relay one request; returns the raw answer, where its body starts, and whether it was framed (so the
        client's connection can carry on)."""
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            writer.write(request)
            await writer.drain()
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if not 100 <= status < 200:
                    break
            headers = _headers(head)
            if method == b"HEAD" or status in (204, 304):
                body = b""
            else:
                body = await _read_body(reader, headers, response=True)
            framed = b"content-length" in headers or b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            keep = headers.get(b"connection", b"").lower() != b"close" and (framed or not body)
            return head + body, len(head), keep
        finally:
            writer.close()


def _headers(head: bytes) -> dict[bytes, bytes]:
    lines = head.split(b"\r\n")[1:]
    pairs = (line.split(b":", 1) for line in lines if b":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes], *, response: bool) -> bytes:
    """A message's body as it came on the wire (chunked framing kept)."""
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        raw = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            raw += line
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += trailer
                return bytes(raw + b"\r\n")
            raw += await reader.readexactly(size + 2)
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"]))
    return await reader.read() if response else b""  # an unframed answer ends with its connection


def _error(kind: str, *, with_body: bool) -> bytes:
    status, reason, code, message = _ERRORS[kind]
    request_id = uuid.uuid4().hex[:16].upper()
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>{request_id}</RequestId><HostId>bard-chaos-proxy</HostId></Error>"
    ).encode()
    body = xml if with_body else b""
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\nServer: bard-chaos-proxy\r\n\r\n"
    ).encode()
    return head + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP reset (SO_LINGER 0), as a dying server or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
