"""One signed delivery attempt over HTTP (webhook-wire.md 1.5 and 2.3).

``deliver(attempt, signing_key=...)``:

* checks the URL and resolves its host once (``ssrf.check_url``), then connects to that
  address only: the request goes to ``scheme://<pinned IP>:port/...`` with the URL's own
  ``Host`` header, and for https the TLS server name (SNI) and certificate check use the URL's
  host name (httpcore's ``sni_hostname`` extension). No second lookup happens, so a DNS answer
  that changes after the check (rebinding) is never used;
* signs every attempt afresh: ``Upstash-Signature`` is a new JWT (``sub`` = the URL exactly as
  given, ``body`` = the hash of the bytes sent), with ``Upstash-Message-Id`` (the same on every
  retry), ``Upstash-Retried`` and ``User-Agent: Upstash-QStash``;
* never follows redirects: a 3xx is the response (a caller that follows one must check the
  new URL with ``check_url`` again), ignores proxy environment variables (a proxy would
  resolve the name itself);
* keeps ``timeout`` as a deadline for the whole attempt (connect, TLS handshake, sending,
  waiting for and reading the headers, reading the body), not only per socket operation (the
  httpx timeout, kept as well, bounds each one): a destination sending its headers one byte at
  a time would otherwise hold the worker as long as it liked. A watchdog (``_Watchdog``, a
  ``threading.Timer``) shuts the connection's socket down at the deadline, which wakes the
  blocked call at once. It finds the socket through httpcore's ``trace`` request extension
  (``connection.connect_tcp.complete``) and keeps a duplicate of it (``dup()``): the same
  kernel socket, so shutting it down also ends a TLS handshake or a TLS read (``start_tls``
  detaches the plain socket object and hands out the TLS one only after the handshake), and
  ours alone, so it is never a descriptor number since reused by another connection. The timer
  is cancelled and joined before ``deliver`` returns: no thread outlives the attempt. No
  headers by the deadline is ``DeliveryFailed("timed out after N s ...")``; headers received
  and the body still arriving is a response with the body cut (``truncated``);
* returns the status, the headers and the first ``max_body`` bytes of the body, undecoded
  (no decompression: a small gzip body cannot expand into a large one here).

``Refused`` (from ``ssrf``) is never worth retrying; ``DeliveryFailed`` (no response: DNS,
connection, timeout) is.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from django_bgjobs.delivery.ssrf import Allowlist, NotResolved, Refused, Resolver, check_url
from django_bgjobs.webhooks.sign import qstash_signature, standard_signature

MAX_BODY = 4096  # bytes of a response body kept
DEFAULT_TIMEOUT = 30.0  # seconds, for the whole attempt
USER_AGENT = "Upstash-QStash"

# Set by deliver() itself, or meaningless to forward (hop-by-hop, framing).
_RESERVED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authorization",
        "upstash-signature",
        "upstash-message-id",
        "upstash-retried",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class DeliveryFailed(Exception):
    """No response: the host did not resolve, the connection failed or the attempt timed out.
    Retryable."""


@dataclass(frozen=True)
class Attempt:
    url: str
    body: bytes
    message_id: str
    retried: int = 0  # Upstash-Retried: 0 on the first attempt
    method: str = "POST"
    # Sent as they are: Content-Type, the forwarded headers (prefix stripped),
    # Upstash-Topic-Name, Upstash-Schedule-Id...
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, list[str]]  # lower-case names, values in order received
    body: bytes  # the first max_body bytes, as received (not decompressed)
    truncated: bool  # the body was longer (or stopped arriving before the deadline)
    address: str  # the IP connected to
    elapsed: float  # seconds

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def first_headers(self) -> dict[str, str]:
        return {name: values[0] for name, values in self.headers.items() if values}


def _request_headers(
    attempt: Attempt, signed: Mapping[str, str], host_header: str
) -> dict[str, str]:
    headers: dict[str, str] = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    for name, value in attempt.headers.items():
        if not _TOKEN.match(name):
            raise Refused(f"header name {name!r} is not valid")
        if any(c in value for c in "\r\n\0"):
            raise Refused(f"header {name!r} contains a line break or NUL")
        if name.lower() in _RESERVED:
            continue
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    headers["Host"] = host_header
    headers.update(signed)
    headers["Upstash-Message-Id"] = attempt.message_id
    headers["Upstash-Retried"] = str(attempt.retried)
    return headers


def _signature_headers(
    attempt: Attempt, signing_key: str, standard_secret: str | None, now: float
) -> dict[str, str]:
    """Upstash-Signature, or the Standard Webhooks headers when a secret is given."""
    if standard_secret is None:
        return {"Upstash-Signature": qstash_signature(attempt.body, attempt.url, signing_key, now)}
    timestamp = int(now)
    return {
        "webhook-id": attempt.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(
            attempt.body, attempt.message_id, timestamp, standard_secret
        ),
    }


def deliver(
    attempt: Attempt,
    *,
    signing_key: str,
    standard_secret: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_body: int = MAX_BODY,
    allow: Allowlist | None = None,
    resolver: Resolver | None = None,
    now: float | None = None,
    verify: ssl.SSLContext | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Response:
    """Send one attempt, signed with ``signing_key`` (QStash), or with ``standard_secret``
    (Standard Webhooks) when given. ``verify``: the TLS context (default: the system's CAs
    through certifi, made once per process). Raises ``Refused`` (do not retry) or
    ``DeliveryFailed`` (retry)."""
    if not _TOKEN.match(attempt.method):
        raise Refused(f"method {attempt.method!r} is not valid")
    try:
        target = check_url(attempt.url, allow=allow, resolver=resolver)
    except NotResolved as exc:
        raise DeliveryFailed(str(exc)) from None
    signed = _signature_headers(
        attempt, signing_key, standard_secret, time.time() if now is None else now
    )
    headers = _request_headers(attempt, signed, target.host_header)
    url = httpx.URL(attempt.url).copy_with(
        scheme=target.scheme, host=target.address, port=target.port
    )
    started = time.monotonic()
    deadline = started + timeout
    with (
        _Watchdog(timeout) as watchdog,
        httpx.Client(
            transport=transport,
            verify=verify or default_tls(),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
        ) as client,
    ):
        extensions: dict[str, Any] = {"trace": watchdog.trace}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        request = client.build_request(
            attempt.method.upper(),
            url,
            headers=headers,
            content=attempt.body,
            extensions=extensions,
        )
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if watchdog.fired:  # whatever the shutdown surfaced as (read, write, TLS error)
                raise DeliveryFailed(
                    f"timed out after {timeout:g} s (deadline for the whole "
                    f"attempt; {type(exc).__name__})"
                ) from None
            if isinstance(exc, httpx.TimeoutException):
                raise DeliveryFailed(
                    f"timed out after {timeout:g} s ({type(exc).__name__})"
                ) from None
            if isinstance(exc, httpx.TransportError):
                raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
            raise
        try:
            body, truncated = _read_bounded(response, max_body, deadline)
        finally:
            response.close()
        truncated = truncated or watchdog.fired  # a body ended by the shutdown is cut
    received: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        received.setdefault(name.lower(), []).append(value)
    return Response(
        status=response.status_code,
        headers=received,
        body=body,
        truncated=truncated,
        address=target.address,
        elapsed=time.monotonic() - started,
    )


class _Watchdog:
    """Shuts the attempt's connection down ``seconds`` from now, from a timer thread, so that
    whatever call is blocked on it (connect excepted: no socket yet, but its own timeout ends
    it by the deadline) fails at once. ``trace`` is the httpcore ``trace`` extension that hands
    it the socket. Use as a context manager: leaving cancels and joins the timer."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None  # our duplicate of the connection's socket
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.name = "bgjobs-delivery-deadline"
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            watched, self._socket = self._socket, None
        if watched is not None:
            watched.close()
        self._timer.join()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        try:
            sock = stream.get_extra_info("socket") if stream is not None else None
            if not isinstance(sock, socket.socket):
                return  # another network backend: the per-operation timeouts still hold
            watched = sock.dup()
        except OSError:
            return  # no descriptor to spare: the per-operation timeouts still hold
        with self._lock:
            if self._done:
                watched.close()
                return
            previous, self._socket = self._socket, watched
            if self.fired:  # connected just after the deadline
                _shut_down(watched)
        if previous is not None:
            previous.close()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._socket is not None:
                _shut_down(self._socket)


def _shut_down(sock: socket.socket) -> None:
    """Both directions: a thread blocked in recv or send on the socket wakes (close() alone
    would not wake it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


@functools.cache
def default_tls() -> ssl.SSLContext:
    """One TLS context per process: making one reads certifi's CA bundle, about 19 ms of CPU,
    which per attempt was most of a delivery's cost (bench/delivery.py)."""
    return httpx.create_ssl_context()


def _read_bounded(response: httpx.Response, max_body: int, deadline: float) -> tuple[bytes, bool]:
    """The first ``max_body`` bytes; a body that is longer, breaks off or is still arriving at
    the deadline is cut (the status is what counts; the body is only kept for display)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body or time.monotonic() > deadline:
                return b"".join(chunks)[:max_body], True
    except httpx.HTTPError:
        return b"".join(chunks)[:max_body], True
    return b"".join(chunks), False
